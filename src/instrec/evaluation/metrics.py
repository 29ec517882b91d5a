"""Retrieval and open-set metrics computed from per-query outcomes (pure functions, no engine)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One ranked answer kept for the report: which instance, how sure, and the gallery image shown."""

    instance_id: str
    label: str
    score: float
    image: str  # source of the gallery image that matched (a path for folder datasets)


@dataclass(frozen=True)
class QueryOutcome:
    truth: str | None  # None: the query's instance is not enrolled (must be "unknown")
    ranked: list[str]  # instance ids, best first
    top_score: float  # score of the best match (what the open-set threshold is applied to)
    unknown: bool  # the engine's decision at its threshold
    image_relevance: list[bool]  # gallery images ranked for this query: is each of the true instance?
    relevant_images: int  # how many gallery images the true instance has
    ms: float
    query: str = ""  # the query's source (path), for showing failures
    top: tuple[Candidate, ...] = ()  # the first few answers with their gallery images
    timing_ms: dict[str, float] = field(default_factory=dict)  # the engine's own per-stage timing
    confidence: float | None = None  # the confidence shown with the best match

    @property
    def correct(self) -> bool:
        """Known query with the right instance first."""
        return self.truth is not None and bool(self.ranked) and self.ranked[0] == self.truth


def _rank(outcome: QueryOutcome) -> int | None:
    if outcome.truth is None:
        return None
    try:
        return outcome.ranked.index(outcome.truth) + 1
    except ValueError:
        return None


def average_precision(relevance: list[bool], relevant_total: int) -> float:
    if relevant_total <= 0:
        return 0.0
    hits, total = 0, 0.0
    for position, relevant in enumerate(relevance, 1):
        if relevant:
            hits += 1
            total += hits / position
    return total / relevant_total


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """Probability a known query outscores an unknown one (ties count half); None if a side is empty."""
    if len(positives) == 0 or len(negatives) == 0:
        return None
    scores = np.concatenate([positives, negatives])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))


def tar_at_far(known: list[QueryOutcome], unknown: list[QueryOutcome], far: float) -> float | None:
    """Share of known queries accepted *and correct* at the threshold letting ``far`` of unknowns in."""
    if not known or not unknown:
        return None
    negatives = np.sort(np.asarray([o.top_score for o in unknown]))
    allowed = int(np.floor(far * len(negatives)))
    threshold = negatives[len(negatives) - allowed - 1] if allowed < len(negatives) else -np.inf
    return float(np.mean([o.top_score > threshold and _rank(o) == 1 for o in known]))


def reliability(outcomes: list[QueryOutcome], bins: int = 10) -> list[tuple[float, float, int]]:
    """Per confidence bin with queries in it: (mean confidence shown, share of those answers that
    were right, queries). An unknown query's best match is never right."""
    shown = [(o.confidence, o.correct) for o in outcomes if o.confidence is not None]
    out = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in shown if low <= c < high or (b == bins - 1 and c == 1.0)]
        if inside:
            out.append((float(np.mean([c for c, _ in inside])), float(np.mean([ok for _, ok in inside])), len(inside)))
    return out


def expected_calibration_error(outcomes: list[QueryOutcome], bins: int = 10) -> float | None:
    """Mean gap between the confidence shown and how often the answer was right, weighted by queries."""
    table = reliability(outcomes, bins)
    total = sum(n for _, _, n in table)
    return sum(n * abs(c - right) for c, right, n in table) / total if total else None


def summarise(outcomes: list[QueryOutcome]) -> dict[str, float | int | None]:
    known = [o for o in outcomes if o.truth is not None]
    unknown = [o for o in outcomes if o.truth is None]
    ranks = [_rank(o) for o in known]
    ms = np.asarray([o.ms for o in outcomes]) if outcomes else np.zeros(1)

    def share(values: list[bool] | list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "queries": len(outcomes),
        "known_queries": len(known),
        "unknown_queries": len(unknown),
        "top1": share([r == 1 for r in ranks]),
        "top5": share([r is not None and r <= 5 for r in ranks]),
        "mrr": share([1.0 / r if r else 0.0 for r in ranks]),
        "map": share([average_precision(o.image_relevance, o.relevant_images) for o in known]),
        "auroc": auroc(np.asarray([o.top_score for o in known]), np.asarray([o.top_score for o in unknown])),
        "tar_at_far_1pct": tar_at_far(known, unknown, 0.01),
        # at the engine's own (calibrated) threshold:
        "accept_correct": share([not o.unknown and r == 1 for o, r in zip(known, ranks)]),
        "accept_wrong": share([not o.unknown and r != 1 for o, r in zip(known, ranks)]),
        "false_reject": share([o.unknown for o in known]),
        "true_reject": share([o.unknown for o in unknown]),
        "false_accept": share([not o.unknown for o in unknown]),
        "ece": expected_calibration_error(outcomes),
        "ms_per_query": float(np.median(ms)),
        "ms_p95": float(np.percentile(ms, 95)),
    }
