/* Admin page: plots of /v1/stats/history as inline SVG, no library, refreshed every minute. */
"use strict";

const KEY_STORAGE = "instrec.apiKey";  // the same key the main page stores
const SVG = "http://www.w3.org/2000/svg";
const W = 640, H = 180, PAD = 36;

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/* One plot: lines of {name: values} over the minutes, each value or null (a gap), y from 0. */
function plot(title, minutes, lines, unit) {
  const all = Object.values(lines).flat().filter((v) => v !== null);
  const top = Math.max(1e-9, ...all);
  const x = (i) => PAD + ((W - 2 * PAD) * i) / Math.max(1, minutes.length - 1);
  const y = (v) => H - PAD + ((2 * PAD - H) * v) / top;
  const svg = svgNode("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", "data-plot": title, role: "img", "aria-label": title });
  svg.append(svgNode("line", { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, stroke: "#999" }));
  const label = svgNode("text", { x: PAD, y: 16, "font-size": 13 });
  label.textContent = `${title} (max ${top.toPrecision(3)} ${unit})`;
  svg.append(label);
  Object.entries(lines).forEach(([name, values], n) => {
    const points = values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    svg.append(svgNode("polyline", { points: points.join(" "), fill: "none", stroke: ["#2563eb", "#dc2626"][n % 2], "stroke-width": 2, "data-line": name }));
  });
  return svg;
}

/* The best-match scores of the whole window, as bars over the score bins. */
function scoreBars(history) {
  const counts = history.score_bins.slice(1).map((_, b) => history.minutes.reduce((sum, m) => sum + m.score_counts[b], 0));
  const top = Math.max(1, ...counts), bar = (W - 2 * PAD) / counts.length;
  const svg = svgNode("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", "data-plot": "scores", role: "img", "aria-label": "scores" });
  const label = svgNode("text", { x: PAD, y: 16, "font-size": 13 });
  label.textContent = `Best-match scores from ${history.score_bins[0]} to ${history.score_bins.at(-1)} (${counts.reduce((a, b) => a + b, 0)} recognitions)`;
  svg.append(label);
  counts.forEach((count, b) => {
    const height = ((H - 2 * PAD) * count) / top;
    svg.append(svgNode("rect", { x: PAD + b * bar, y: H - PAD - height, width: bar - 1, height, fill: "#2563eb" }));
  });
  return svg;
}

function render(history) {
  const m = history.minutes;
  const perSecond = m.map((x) => x.requests / history.minute_s);
  document.querySelector("#plots").replaceChildren(
    plot("Requests", m, { "per second": perSecond }, "/s"),
    plot("Latency", m, { p50: m.map((x) => x.latency_ms_p50), p95: m.map((x) => x.latency_ms_p95) }, "ms"),
    plot("Unknown rate", m, { unknown: m.map((x) => x.unknown_rate) }, ""),
    scoreBars(history),
  );
}

/* Every collection with its size and calibration state, each linking to the page on it. */
async function renderCollections(headers) {
  const listed = await fetch("/v1/collections", { headers });
  if (!listed.ok) return;
  const names = (await listed.json()).collections.map((c) => c.name);
  const rows = await Promise.all(names.map(async (name) => {
    const base = name === "default" ? "/v1" : `/v1/collections/${encodeURIComponent(name)}`;
    const response = await fetch(`${base}/stats`, { headers });
    const stats = response.ok ? await response.json() : null;
    const row = document.createElement("tr");
    row.dataset.collection = name;
    const link = document.createElement("a");
    link.href = name === "default" ? "/" : `/?collection=${encodeURIComponent(name)}`;
    link.textContent = name;
    const calibration = !stats ? `unavailable (${response.status})`
      : `${stats.calibration}${stats.calibration_stale ? " (stale: the gallery changed since)" : ""}`;
    const cells = stats ? [stats.instances, stats.images, Number(stats.threshold).toFixed(3), calibration] : ["", "", "", calibration];
    row.append(Object.assign(document.createElement("td"), {}), ...cells.map((text) => Object.assign(document.createElement("td"), { textContent: String(text) })));
    row.firstChild.append(link);
    return row;
  }));
  document.querySelector("#collections tbody").replaceChildren(...rows);
  document.querySelector("#collections-box").hidden = false;
}

async function refresh() {
  const status = document.querySelector("#admin-state");
  const key = (() => { try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; } })();
  const headers = key ? { "X-API-Key": key } : {};
  const response = await fetch("/v1/stats/history", { headers });
  const refused = response.status === 401 || response.status === 403;
  document.querySelector("#admin-key-form").hidden = !refused;
  if (!response.ok) {
    status.textContent = refused ? "This page needs an admin key." : `The server answered ${response.status}.`;
    return;
  }
  const history = await response.json();
  status.textContent = `${history.minutes.length} minute${history.minutes.length === 1 ? "" : "s"} kept; updated ${new Date().toLocaleTimeString()}`;
  render(history);
  await renderCollections(headers);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelector("#admin-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    try { localStorage.setItem(KEY_STORAGE, document.querySelector("#admin-key").value.trim()); } catch (e) { /* refused below */ }
    refresh();
  });
  refresh();
  setInterval(refresh, 60000);
});
