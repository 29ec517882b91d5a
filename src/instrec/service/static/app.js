/* instrec web page: plain JS, no build step. Talks to the same origin's /v1 API. */
"use strict";

const KEY_STORAGE = "instrec.apiKey";
const PAGE_SIZE = 24;
const MAX_ENROL = 3;
const state = { authRequired: false, keyRejected: false, libraryOffset: 0, libraryTotal: 0, enrolFiles: [], searchTimer: null };

const $ = (sel) => document.querySelector(sel);

/* The collection this page works on: ?collection=NAME, else the home's own ("default"). Every call on
   the library goes under its prefix; thumbnail URLs come from the server already in it. */
const COLLECTION = new URLSearchParams(location.search).get("collection") || "default";
const LIBRARY = COLLECTION === "default" ? "/v1" : `/v1/collections/${encodeURIComponent(COLLECTION)}`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/* -- API ----------------------------------------------------------------------------------- */
function apiKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
}

async function api(path, { method = "GET", body = undefined, headers = {} } = {}) {
  const key = apiKey();
  const all = { Accept: "application/json", ...headers };
  if (key) all["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, { method, body, headers: all });
  } catch (e) {
    throw Object.assign(new Error("The server cannot be reached."), { status: 0 });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const info = (data && data.error) || {};
    const error = new Error(info.message || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.code = info.code || "";
    if (response.status === 401) { state.keyRejected = Boolean(key); refreshKeyButton(); showKeyPanel(true); }
    throw error;
  }
  return data;
}

/* Thumbnails: with a key, fetch them with the header (an <img> cannot send one) as blob URLs. */
function thumbnail(url, alt, cls = "thumb") {
  const img = el("img", { class: cls, alt, loading: "lazy", decoding: "async" });
  if (!url) { img.classList.add("missing"); return img; }
  const key = apiKey();
  if (!key) { img.src = url; return img; }
  fetch(url, { headers: { "X-API-Key": key } })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
    .then((blob) => {
      const objectUrl = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(objectUrl), { once: true });
      img.src = objectUrl;
    })
    .catch(() => img.classList.add("missing"));
  return img;
}

/* -- small UI helpers ------------------------------------------------------------------------ */
let toastTimer = null;
function toast(message, kind = "error") {
  const box = $("#toast");
  box.textContent = message;
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 7000 : 3500);
}

function busy(selector, on) { $(selector).hidden = !on; }

function fmtScore(x) { return Number(x).toFixed(3); }

function plural(count, noun) { return `${count} ${noun}${count === 1 ? "" : "s"}`; }

function metadataList(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return null;
  return el("dl", { class: "meta" }, entries.slice(0, 8).map(([k, v]) => [
    el("dt", { text: k }),
    el("dd", { text: typeof v === "string" ? v : JSON.stringify(v) }),
  ]));
}

function fileToPreview(file, cls) {
  const img = el("img", { class: cls, alt: file.name || "photo" });
  const url = URL.createObjectURL(file);
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  img.src = url;
  return img;
}

function wireDropzone(zone, onFiles) {
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "dragend"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = [...(event.dataTransfer ? event.dataTransfer.files : [])].filter((f) => f.type.startsWith("image/") || !f.type);
    if (files.length) onFiles(files);
  });
}

/* -- tabs -------------------------------------------------------------------------------------- */
function showTab(name) {
  if (!["recognize", "enrol", "library"].includes(name)) name = "recognize";
  document.querySelectorAll("[data-panel]").forEach((panel) => { panel.hidden = panel.dataset.panel !== name; });
  document.querySelectorAll(".tab").forEach((tab) => {
    const active = tab.dataset.tab === name;
    tab.classList.toggle("active", active);
    tab.setAttribute("aria-selected", active ? "true" : "false");
  });
  if (name === "library") loadLibrary();
}

/* -- API key ----------------------------------------------------------------------------------- */
function showKeyPanel(open) {
  $("#key-panel").hidden = !open;
  if (open) $("#key-input").focus();
}

function refreshKeyButton() {
  const button = $("#key-button");
  button.hidden = !state.authRequired && !apiKey();
  $("#key-state").textContent = !apiKey() ? "Add key" : state.keyRejected ? "Key rejected" : "Key set";
  button.classList.toggle("warn", (state.authRequired && !apiKey()) || state.keyRejected);
}

/* Says whether the server takes the key just saved, rather than "saved" for a key it refuses. */
async function checkKey() {
  try {
    await api(`${LIBRARY}/stats`);
    toast("API key saved in this browser.", "info");
  } catch (error) {
    toast(error.status === 401 ? "The server rejected this key." : error.message);
  }
  loadStats();
}

/* -- recognise ----------------------------------------------------------------------------------- */
async function recognize(file) {
  if (!file) return;
  const preview = $("#query-preview");
  const url = URL.createObjectURL(file);
  preview.onload = () => URL.revokeObjectURL(url);
  preview.src = url;
  preview.hidden = false;
  $("#recognize-drop").classList.add("has-image");
  $("#recognize-empty").hidden = true;
  $("#verdict").hidden = true;
  clearFoundBoxes();
  $("#results").replaceChildren();
  $("#timing").textContent = "";
  busy("#recognize-busy", true);
  const form = new FormData();
  form.append("image", file, file.name || "photo.jpg");
  try {
    const k = $("#recognize-k").value;
    const result = await api(`${LIBRARY}/recognize?k=${encodeURIComponent(k)}`, { method: "POST", body: form });
    renderRecognition(result);
  } catch (error) {
    $("#verdict").hidden = false;
    $("#verdict").className = "verdict error";
    $("#verdict").replaceChildren(el("strong", { text: "Could not recognise this photo. " }), error.message);
  } finally {
    busy("#recognize-busy", false);
  }
}

/* -- where things were found on the query photo ----------------------------------------------- */
function clearFoundBoxes() { document.querySelectorAll("#query-frame .found-box").forEach((box) => box.remove()); }

/* Any entry of the answer that carries a box (the best match, the recognition itself; in a faces
   library each face, of which the recognition is the largest) is drawn, labelled, once: boxes are in
   pixels of the photo as sent. */
function foundBoxes(result) {
  const entries = result.faces ? result.faces : [result, result.best];
  const boxes = [];
  for (const entry of entries) {
    if (!entry || !entry.box) continue;
    const best = entry.best || entry;
    boxes.push({ box: entry.box, label: best.label || (entry.unknown ? "unknown" : "") });
  }
  return boxes;
}

function drawFoundBoxes(result) {
  const preview = $("#query-preview");
  const draw = () => {
    const width = preview.naturalWidth, height = preview.naturalHeight;
    if (!width || !height) return;
    clearFoundBoxes();
    for (const { box, label } of foundBoxes(result)) {
      const node = el("div", { class: "found-box", "data-label": label },
        label ? el("span", { class: "found-box-label", text: label }) : null);
      node.style.left = `${(100 * box.left) / width}%`;
      node.style.top = `${(100 * box.top) / height}%`;
      node.style.width = `${(100 * (box.right - box.left)) / width}%`;
      node.style.height = `${(100 * (box.bottom - box.top)) / height}%`;
      $("#query-frame").append(node);
    }
  };
  if (preview.complete && preview.naturalWidth) draw();
  else preview.addEventListener("load", draw, { once: true });
}

function renderRecognition(result) {
  const verdict = $("#verdict");
  verdict.hidden = false;
  const matches = result.matches || [];
  if (!result.unknown && matches.length) {
    const best = matches[0];
    verdict.className = "verdict known";
    verdict.replaceChildren(
      el("span", { class: "verdict-icon", "aria-hidden": "true", text: "✓" }),
      el("div", {}, el("div", { class: "verdict-title" }, "Recognised: ", el("strong", { class: "verdict-label", text: best.label })),
        el("div", { class: "small", text: `score ${fmtScore(best.score)} · threshold ${fmtScore(result.threshold)}` })),
    );
  } else {
    verdict.className = "verdict unknown";
    verdict.replaceChildren(
      el("span", { class: "verdict-icon", "aria-hidden": "true", text: "?" }),
      el("div", {}, el("div", { class: "verdict-title" }, el("strong", { text: "Unknown" })),
        el("div", { class: "small", text: matches.length
          ? `Nothing scores above the threshold ${fmtScore(result.threshold)}. Nearest candidates:`
          : "The library is empty: enrol something first." })),
    );
  }
  drawFoundBoxes(result);
  const cards = matches.map((m, i) => matchCard(m, i, result));
  $("#results").replaceChildren(...cards);
  const t = result.timing_ms || {};
  $("#timing").textContent = `${Math.round(t.request || t.total || 0)} ms on the server (model ${Math.round(t.embed || 0)} ms)`;
}

function matchCard(match, index, result) {
  const above = match.score >= result.threshold;
  const isBest = index === 0 && !result.unknown;
  const bar = el("div", { class: "scorebar", title: `score ${fmtScore(match.score)}` },
    el("div", { class: `scorefill ${above ? "above" : "below"}` }),
    el("div", { class: "threshold-mark", title: `threshold ${fmtScore(result.threshold)}` }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(1, match.score)) * 100}%`;
  bar.lastChild.style.left = `${Math.max(0, Math.min(1, result.threshold)) * 100}%`;
  const others = (match.images || []).filter((img) => img.id !== match.image_id).slice(0, 3);
  return el("article", { class: `card result-card${isBest ? " best" : ""}${above ? "" : " below-threshold"}`,
                          "data-instance-id": match.instance_id },
    el("div", { class: "card-media" },
      thumbnail(match.thumbnail_url, `Reference photo of ${match.label}`),
      others.length ? el("div", { class: "strip" }, others.map((img) => thumbnail(img.thumbnail_url, match.label, "mini"))) : null),
    el("div", { class: "card-body" },
      el("div", { class: "card-head" },
        el("span", { class: "rank", text: `#${index + 1}` }),
        el("h3", { class: "card-label", text: match.label })),
      el("div", { class: "score-line" },
        el("span", { class: "score", text: fmtScore(match.score) }),
        el("span", { class: "muted small", text: `${Math.round(match.confidence * 100)}% confidence` }),
        match.inliers == null ? null
          : el("span", { class: "muted small", title: "keypoints that map onto the reference photo by one perspective transform",
                         text: `${match.inliers} matching points` }),
        above ? null : el("span", { class: "badge", text: "below threshold" })),
      bar,
      metadataList(match.metadata),
      el("div", { class: "muted tiny id", text: match.instance_id })));
}

/* -- enrol -------------------------------------------------------------------------------------- */
function setEnrolFiles(files) {
  const merged = [...state.enrolFiles, ...files];
  if (merged.length > MAX_ENROL) toast(`At most ${MAX_ENROL} photos per instance; keeping the first ${MAX_ENROL}.`, "info");
  state.enrolFiles = merged.slice(0, MAX_ENROL);
  renderEnrolPreviews();
}

function renderEnrolPreviews() {
  const items = state.enrolFiles.map((file, i) => el("div", { class: "preview" },
    fileToPreview(file, "preview-img"),
    el("button", { type: "button", class: "remove", title: "Remove", "aria-label": "Remove photo",
      onclick: () => { state.enrolFiles.splice(i, 1); renderEnrolPreviews(); } }, "×")));
  $("#enrol-previews").replaceChildren(...items);
}

async function enrol(event) {
  event.preventDefault();
  const label = $("#enrol-label").value.trim();
  const metadataText = $("#enrol-metadata").value.trim();
  const result = $("#enrol-result");
  result.hidden = true;
  if (!label) { toast("Give the instance a label."); $("#enrol-label").focus(); return; }
  if (!state.enrolFiles.length) { toast("Add at least one photo."); return; }
  if (metadataText) {
    try {
      const parsed = JSON.parse(metadataText);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
    } catch (e) { toast('Metadata must be a JSON object, e.g. {"sku": "123"}.'); return; }
  }
  const form = new FormData();
  form.append("label", label);
  if (metadataText) form.append("metadata", metadataText);
  state.enrolFiles.forEach((file, i) => form.append("images", file, file.name || `photo-${i + 1}.jpg`));
  $("#enrol-submit").disabled = true;
  busy("#enrol-busy", true);
  try {
    const instance = await api(`${LIBRARY}/instances`, { method: "POST", body: form });
    result.className = "notice success";
    result.replaceChildren(
      el("strong", { text: `Enrolled “${instance.label}”` }),
      ` with ${instance.image_count} photo${instance.image_count === 1 ? "" : "s"} (id ${instance.id}). `,
      el("a", { href: "#recognize", text: "Recognise a photo →" }));
    result.hidden = false;
    $("#enrol-form").reset();
    state.enrolFiles = [];
    renderEnrolPreviews();
    loadStats();
  } catch (error) {
    result.className = "notice error";
    result.textContent = error.status === 403 ? "Your API key is read-only: enrolling needs an admin key." : error.message;
    result.hidden = false;
  } finally {
    $("#enrol-submit").disabled = false;
    busy("#enrol-busy", false);
  }
}

/* -- library ------------------------------------------------------------------------------------ */
async function loadLibrary() {
  const search = $("#library-search").value.trim();
  const params = new URLSearchParams({ offset: String(state.libraryOffset), limit: String(PAGE_SIZE) });
  if (search) params.set("search", search);
  try {
    const page = await api(`${LIBRARY}/instances?${params}`);
    state.libraryTotal = page.total;
    if (!page.instances.length && state.libraryOffset > 0) {
      state.libraryOffset = Math.max(0, state.libraryOffset - PAGE_SIZE);
      return loadLibrary();
    }
    const cards = page.instances.map(instanceCard);
    $("#library-list").replaceChildren(...(cards.length ? cards
      : [el("p", { class: "empty", text: search ? `Nothing matches “${search}”.` : "No instances yet: enrol one." })]));
    $("#library-count").textContent = `${page.total} instance${page.total === 1 ? "" : "s"}`;
    const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    $("#library-page").textContent = `page ${Math.floor(state.libraryOffset / PAGE_SIZE) + 1} of ${pages}`;
    $("#library-prev").disabled = state.libraryOffset === 0;
    $("#library-next").disabled = state.libraryOffset + PAGE_SIZE >= page.total;
  } catch (error) {
    $("#library-list").replaceChildren(el("p", { class: "empty", text: error.message }));
  }
}

function instanceCard(instance) {
  const [first, ...rest] = instance.images || [];
  return el("article", { class: "card instance-card", "data-instance-id": instance.id },
    el("div", { class: "card-media" },
      thumbnail(first && first.thumbnail_url, `Photo of ${instance.label}`),
      rest.length ? el("div", { class: "strip" }, rest.slice(0, 3).map((img) => thumbnail(img.thumbnail_url, instance.label, "mini"))) : null),
    el("div", { class: "card-body" },
      el("h3", { class: "card-label", text: instance.label }),
      el("div", { class: "muted small", text: `${instance.image_count} photo${instance.image_count === 1 ? "" : "s"}` }),
      metadataList(instance.metadata),
      el("div", { class: "card-foot" },
        el("span", { class: "muted tiny id", text: instance.id }),
        el("button", { type: "button", class: "danger small-button delete-button",
          onclick: () => removeInstance(instance) }, "Delete"))));
}

async function removeInstance(instance) {
  if (!window.confirm(`Delete “${instance.label}” and its ${instance.image_count} photo(s)? This cannot be undone.`)) return;
  try {
    await api(`${LIBRARY}/instances/${encodeURIComponent(instance.id)}`, { method: "DELETE" });
    toast(`Deleted “${instance.label}”.`, "info");
    await loadLibrary();
    loadStats();
  } catch (error) {
    toast(error.status === 403 ? "Your API key is read-only: deleting needs an admin key." : error.message);
  }
}

/* -- footer stats ------------------------------------------------------------------------------- */
async function loadStats() {
  if (state.authRequired && !apiKey()) return;  // it would only be refused: wait for a key
  try {
    const s = await api(`${LIBRARY}/stats`);
    $("#footer-stats").textContent =
      `${COLLECTION === "default" ? "" : `collection ${COLLECTION} · `}${plural(s.instances, "instance")} · ${plural(s.images, "photo")} · ${s.index.kind} index · ${s.descriptor.backbone || s.descriptor.embedder} · threshold ${fmtScore(s.threshold)} · `;
  } catch (e) {
    $("#footer-stats").textContent = "";
  }
}

/* -- collections ------------------------------------------------------------------------------ */
/* The selector, shown once the server lists more than one collection this key may use; choosing one
   reloads the page on it (the address says which, so it can be bookmarked). */
async function loadCollections() {
  if (state.authRequired && !apiKey()) return;
  let names;
  try {
    names = (await api("/v1/collections")).collections.map((c) => c.name);
  } catch (e) { return; }
  if (!names.includes(COLLECTION)) names.push(COLLECTION);  // asked for by address: its calls say if it exists
  const select = $("#collection");
  select.replaceChildren(...names.map((name) => el("option", { value: name, text: name, selected: name === COLLECTION })));
  $("#collection-box").hidden = names.length < 2;
}

function chooseCollection() {
  const name = $("#collection").value;
  const params = new URLSearchParams(location.search);
  if (name === "default") params.delete("collection"); else params.set("collection", name);
  location.search = params.toString() ? `?${params}` : "";
}

/* -- start ------------------------------------------------------------------------------------- */
async function start() {
  try {
    const health = await api("/healthz");
    state.authRequired = Boolean(health.auth);
  } catch (e) { /* shown by later calls */ }
  refreshKeyButton();
  if (state.authRequired && !apiKey()) showKeyPanel(true);

  $("#collection").addEventListener("change", chooseCollection);
  $("#key-button").addEventListener("click", () => showKeyPanel($("#key-panel").hidden));
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#key-input").value.trim();
    try { if (key) localStorage.setItem(KEY_STORAGE, key); } catch (e) { toast("This browser does not allow storing the key."); }
    $("#key-input").value = "";
    showKeyPanel(false);
    state.keyRejected = false;
    refreshKeyButton();
    checkKey();
    loadCollections();
    if (!$("#panel-library").hidden) loadLibrary();
  });
  $("#key-forget").addEventListener("click", () => {
    try { localStorage.removeItem(KEY_STORAGE); } catch (e) { /* ignore */ }
    state.keyRejected = false;
    refreshKeyButton();
    toast("API key forgotten.", "info");
  });

  const pick = (input, handler) => input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = "";
    if (files.length) handler(files);
  });
  pick($("#recognize-file"), (files) => recognize(files[0]));
  pick($("#recognize-camera"), (files) => recognize(files[0]));
  wireDropzone($("#recognize-drop"), (files) => recognize(files[0]));
  pick($("#enrol-files"), setEnrolFiles);
  pick($("#enrol-camera"), setEnrolFiles);
  wireDropzone($("#enrol-drop"), setEnrolFiles);
  $("#enrol-form").addEventListener("submit", enrol);

  $("#library-search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => { state.libraryOffset = 0; loadLibrary(); }, 250);
  });
  $("#library-prev").addEventListener("click", () => { state.libraryOffset = Math.max(0, state.libraryOffset - PAGE_SIZE); loadLibrary(); });
  $("#library-next").addEventListener("click", () => { state.libraryOffset += PAGE_SIZE; loadLibrary(); });

  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  showTab(location.hash.slice(1));
  loadStats();
  await loadCollections();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
