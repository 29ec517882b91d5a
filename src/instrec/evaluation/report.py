"""One self-contained HTML file explaining an evaluation: every plot and thumbnail inlined as PNG.

Sections: the comparison table, accuracy vs shots, genuine/impostor score histograms, ROC curves,
latency per stage (whatever stages ``Recognition.timing_ms`` reports) and the worst failures as
image strips (query, then its top answers), so a regression can be *seen*, not only counted.
"""

from __future__ import annotations

import base64
import html
import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from instrec.errors import InstrecError
from instrec.evaluation.compare import COLUMNS, Row, table_cells
from instrec.evaluation.metrics import QueryOutcome, expected_calibration_error, reliability
from instrec.extras import require_extra
from instrec.images import load_image

WORST_FAILURES = 20
THUMBNAIL_SIDE = 128
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.strip{display:flex;gap:8px;margin:6px 0;align-items:flex-start}figure{margin:0;width:136px;font-size:12px}
figcaption{word-break:break-all}.good{color:#070}.bad{color:#b00}"""


def write_report(rows: list[Row], path: str | Path, *, title: str = "instrec evaluation") -> Path:
    """Render ``rows`` (from :func:`instrec.evaluation.compare.compare`) into one HTML file."""
    if not rows:
        raise InstrecError("nothing to report: no evaluation rows")
    require_extra("report", "the HTML report")
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    sections = [
        ("Settings", _table(rows)),
        ("Accuracy vs shots", _img(_accuracy_vs_shots(rows))),
        ("Scores: genuine vs impostor", _img(_histograms(rows))),
        ("ROC: known vs unknown queries", _roc_section(rows)),
        ("Operating point at the calibrated threshold", _operating_points(rows)),
        ("Reliability of the confidence shown", _reliability_section(rows)),
        ("Latency per stage (median ms/query)", _latency_section(rows)),
        (f"{WORST_FAILURES} worst failures per row", _failures_section(rows)),
    ]
    body = "".join(f'<section id="{_anchor(name)}"><h2>{html.escape(name)}</h2>{content}</section>' for name, content in sections)
    dataset = html.escape(str(rows[0].run.summary.get("dataset", "")))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>dataset: {dataset}</p>"
        f"{body}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def failures(outcomes: Iterable[QueryOutcome], limit: int = WORST_FAILURES) -> list[QueryOutcome]:
    """Known queries answered wrongly at rank 1, unknown queries accepted, and known queries answered
    rightly but rejected as "unknown": wrong answers most confident first, then the rejected ones
    least confident first (the furthest below the threshold)."""
    outcomes = list(outcomes)
    wrong = [o for o in outcomes if (o.truth is not None and not o.correct) or (o.truth is None and not o.unknown)]
    rejected = sorted((o for o in outcomes if o.correct and o.unknown), key=lambda o: o.top_score)
    shown_rejected = min(len(rejected), max(limit // 2, limit - len(wrong)))
    return sorted(wrong, key=lambda o: -o.top_score)[: limit - shown_rejected] + rejected[:shown_rejected]


def _operating_points(rows: list[Row]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "setting",
            "threshold",
            "accepted correct",
            "accepted wrong",
            "false reject",
            "false accept",
            "ECE",
            "what it rests on",
        )
    )
    body = ""
    for row in rows:
        s = row.run.summary
        cells = (
            [_row_name(row), f"{s.get('threshold', float('nan')):.3f}"]
            + [
                "-" if s.get(k) is None else f"{s[k]:.3f}"
                for k in ("accept_correct", "accept_wrong", "false_reject", "false_accept", "ece")
            ]
            + [str(s.get("calibration", ""))]
        )
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    return (
        "<p>Known queries are accepted correct when their best match is right and scores at or above "
        'the threshold; false rejects are known queries answered "unknown"; false accepts are '
        f"never-enrolled queries given an answer.</p><table><tr>{head}</tr>{body}</table>"
    )


def _reliability_section(rows: list[Row]) -> str:
    import matplotlib.pyplot as plt

    tables = [(row, reliability(row.run.outcomes)) for row in rows]
    if not any(table for _, table in tables):
        return "<p>No confidence was recorded with these answers.</p>"
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for row, table in tables:
        if table:
            ece = expected_calibration_error(row.run.outcomes)
            axis.plot([c for c, _, _ in table], [r for _, r, _ in table], marker="o", label=f"{_row_name(row)}: ECE {ece:.3f}")
    axis.plot([0, 1], [0, 1], color="0.7", linestyle=":")
    axis.set_xlabel("confidence shown")
    axis.set_ylabel("share of those answers that were right")
    axis.legend(fontsize=8)
    return (
        "<p>Queries binned by the confidence shown with their best match: a calibrated confidence lies "
        "on the diagonal. ECE is the mean gap, weighted by queries.</p>" + _img(figure, "reliability")
    )


def _row_name(row: Row) -> str:
    return f"{row.setting.name} ({row.shots} shot{'s' if row.shots > 1 else ''})"


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _table(rows: list[Row]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("setting", "shots", *(label for _, label in COLUMNS)))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in table_cells(row)) + "</tr>" for row in rows)
    overrides = "".join(
        f"<li><b>{html.escape(r.setting.name)}</b>: {html.escape(_overrides(r))}</li>"
        for r in {r.setting.name: r for r in rows}.values()
    )
    return f"<table><tr>{head}</tr>{body}</table><ul>{overrides}</ul>"


def _overrides(row: Row) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.setting.overrides.items()) or "base configuration"


def _img(figure: Any, alt: str = "plot") -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return _png_tag(buffer.getvalue(), alt)


def _png_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _accuracy_vs_shots(rows: list[Row]) -> Any:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r.setting.name for r in rows):
        mine = sorted((r for r in rows if r.setting.name == name), key=lambda r: r.shots)
        shots = [r.shots for r in mine]
        (line,) = axis.plot(shots, [r.run.summary["top1"] or 0.0 for r in mine], marker="o", label=f"{name} top-1")
        axis.plot(
            shots,
            [r.run.summary["top5"] or 0.0 for r in mine],
            marker=".",
            linestyle="--",
            color=line.get_color(),
            label=f"{name} top-5",
        )
    axis.set(xlabel="shots per instance", ylabel="accuracy", ylim=(0, 1.02))
    axis.set_xticks(sorted({r.shots for r in rows}))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def _histograms(rows: list[Row]) -> Any:
    import matplotlib.pyplot as plt

    columns = min(3, len(rows))
    lines = -(-len(rows) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3 * lines), squeeze=False, layout="constrained")
    for axis in axes.flat[len(rows) :]:
        axis.set_visible(False)
    for axis, row in zip(axes.flat, rows):
        genuine = [o.top_score for o in row.run.outcomes if o.correct]
        impostor = [o.top_score for o in row.run.outcomes if not o.correct]
        bins = np.linspace(min(genuine + impostor, default=0.0), max(genuine + impostor, default=1.0), 30)
        axis.hist(genuine, bins=bins, alpha=0.6, color="tab:green", label=f"genuine ({len(genuine)})")
        axis.hist(impostor, bins=bins, alpha=0.6, color="tab:red", label=f"impostor ({len(impostor)})")
        if row.run.summary.get("threshold") is not None:
            axis.axvline(row.run.summary["threshold"], color="k", linestyle=":", label="threshold")
        axis.set(title=_row_name(row), xlabel="top-1 score")
        axis.title.set_fontsize(9)
        axis.legend(fontsize=7)
    figure.suptitle("genuine: top-1 is the right instance; impostor: wrong instance, or a query of no enrolled one", fontsize=9)
    return figure


def roc_curve(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-accept rate, true-accept rate) for every threshold, from (0, 0) to (1, 1)."""
    thresholds = np.unique(np.concatenate([positives, negatives]))[::-1]
    far = np.array([0.0, *((negatives >= t).mean() for t in thresholds)])
    tar = np.array([0.0, *((positives >= t).mean() for t in thresholds)])
    return far, tar


def _roc_section(rows: list[Row]) -> str:
    import matplotlib.pyplot as plt

    usable = [r for r in rows if r.run.summary.get("auroc") is not None]
    if not usable:
        return (
            "<p>No unknown queries: evaluate with <code>--unknown-fraction</code> or a <code>queries/_unknown</code> folder.</p>"
        )
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for row in usable:
        known = np.asarray([o.top_score for o in row.run.outcomes if o.truth is not None])
        unknown = np.asarray([o.top_score for o in row.run.outcomes if o.truth is None])
        far, tar = roc_curve(known, unknown)
        axis.plot(far, tar, label=f"{_row_name(row)}: AUROC {row.run.summary['auroc']:.3f}")
    axis.plot([0, 1], [0, 1], color="0.7", linestyle=":")
    axis.set(xlabel="unknown queries accepted (FAR)", ylabel="known queries accepted", xlim=(0, 1), ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return _img(figure, "ROC")


def stage_medians(rows: list[Row]) -> tuple[list[str], np.ndarray]:
    """The stages ``timing_ms`` reported (any, in order of appearance) and their median ms per row."""
    stages = list(dict.fromkeys(k for r in rows for o in r.run.outcomes for k in o.timing_ms if k != "total"))
    medians = np.array(
        [
            [np.median([o.timing_ms.get(stage, 0.0) for o in r.run.outcomes]) if r.run.outcomes else 0.0 for stage in stages]
            for r in rows
        ]
    ).reshape(len(rows), len(stages))
    return stages, medians


def _latency_section(rows: list[Row]) -> str:
    import matplotlib.pyplot as plt

    stages, medians = stage_medians(rows)
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    names = [_row_name(r) for r in rows]
    left = np.zeros(len(rows))
    for column, stage in enumerate(stages):
        axis.barh(names, medians[:, column], left=left, label=stage)
        left += medians[:, column]
    for y, row in enumerate(rows):
        axis.text(left[y], y, f" {row.run.summary['ms_per_query']:.1f} ms end to end", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set(xlabel="median ms per query", xlim=(0, max(left.max(initial=0.0), 1.0) * 1.4))
    if stages:
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("row", *stages, "end to end"))
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{v:.1f}</td>" for v in values)
        + f"<td>{row.run.summary['ms_per_query']:.1f}</td></tr>"
        for name, values, row in zip(names, medians, rows)
    )
    return _img(figure, "latency per stage") + f"<table><tr>{head}</tr>{body}</table>"


def _failures_section(rows: list[Row]) -> str:
    parts = []
    for row in rows:
        worst = failures(row.run.outcomes)
        strips = "".join(_strip(o) for o in worst) or "<p>No failures.</p>"
        parts.append(f"<h3>{html.escape(_row_name(row))}</h3>{strips}")
    return (
        "<p>Known queries whose top-1 is wrong and unknown queries accepted at the threshold, "
        "highest top-1 score first; then known queries answered rightly but rejected as "
        '"unknown", lowest score first.</p>' + "".join(parts)
    )


def _strip(outcome: QueryOutcome) -> str:
    truth = outcome.truth or "unknown (not enrolled)"
    verdict = " (rejected)" if outcome.correct and outcome.unknown else ""
    cells = [_figure(outcome.query, f"query{verdict}<br>truth: {html.escape(truth)}")]
    for rank, candidate in enumerate(outcome.top, 1):
        verdict = "good" if candidate.instance_id == outcome.truth else "bad"
        caption = (
            f"<span class='{verdict}'>#{rank} {html.escape(candidate.label or candidate.instance_id)}</span>"
            f"<br>score {candidate.score:.3f}"
        )
        cells.append(_figure(candidate.image, caption))
    return f"<div class='strip'>{''.join(cells)}</div>"


def _figure(source: str, caption: str) -> str:
    return f"<figure>{_thumbnail(source)}<figcaption>{caption}</figcaption></figure>"


@lru_cache(maxsize=512)  # the same gallery image recurs across failure strips
def _thumbnail(source: str) -> str:
    try:
        image = load_image(source).pixels.copy()
    except InstrecError:
        return f"<div>(image {html.escape(Path(source).name)} not readable)</div>"
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return _png_tag(buffer.getvalue(), Path(source).name)
