"""One score per candidate from global similarity, verified inliers and colour.

Each input is mapped to [0, 1] with a fixed (query-independent) curve, so the fused score means the
same thing for every query and can be thresholded for open-set "unknown":

* global: cosine similarity, clipped to [0, 1];
* inliers: the count above ``inlier_floor`` (RANSAC reaches a few inliers on chance matches: a
  homography fits any 4 points exactly) through a logistic curve, shifted so no inliers above the
  floor give 0: about 0.5 at ``inlier_midpoint`` above it. It is increasing, so ranking follows
  inlier counts, but the few inliers chance matches reach add nothing or little.
* colour: the colour similarity (:mod:`instrec.rerank.colour`), already in [0, 1]. An id without
  one (features stored before colour signatures existed, or no hued pixel on either side) leaves
  the term out of its own mean rather than counting as a colour mismatch.

The weighted mean uses only the inputs actually given (``None``), so a caller without a global
descriptor still gets a [0, 1] score. Global similarity and geometry weigh the same by default:
geometry separates look-alikes and finds small objects in clutter, while the global term carries
textureless objects (no keypoints, no inliers) and colour differences SIFT cannot see.

The mean is one of an instance's two channels: the decision lowers it against the competing
instances and keeps the larger of that and the inlier evidence alone
(:func:`instrec.decision.against_competitors`), so strong geometry is not averaged down by a
global similarity that a flat catalogue label and a photo of the curved bottle do not share.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

from instrec.profiles import RerankTuning


def inlier_evidence(inliers: float, config: RerankTuning) -> float:
    """Geometric evidence in [0, 1): 0 up to ``config.inlier_floor`` inliers, ~0.5 at ``inlier_midpoint`` above it."""

    def logistic(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-(x - config.inlier_midpoint) / config.inlier_width))

    at_zero = logistic(0.0)
    above_floor = max(0.0, float(inliers) - config.inlier_floor)
    return max(0.0, (logistic(above_floor) - at_zero) / (1.0 - at_zero))


def fuse(
    global_scores: Mapping[int, float] | None,
    inliers: Mapping[int, int] | None,
    config: RerankTuning = RerankTuning(),
    colour: Mapping[int, float] | None = None,
) -> dict[int, float]:
    """Fused score in [0, 1] for every image id present in the evidence inputs (absent = no
    evidence); ``colour`` only adjusts ids that have one."""
    clip = lambda v: min(1.0, max(0.0, float(v)))  # noqa: E731
    geometry = None if inliers is None else {i: inlier_evidence(n, config) for i, n in inliers.items()}
    inputs: list[tuple[Mapping[int, float] | None, float, Callable[[float], float]]] = [
        (global_scores, config.weight_global, clip),
        (geometry, config.weight_inliers, float),
    ]
    terms = [(scores, w, f) for scores, w, f in inputs if scores is not None and w > 0]
    ids = {int(i) for scores, _, _ in terms for i in scores}
    total = sum(w for _, w, _ in terms)
    if not terms or total == 0:
        return {i: 0.0 for i in ids}
    fused = {i: sum(w * f(scores[i]) for scores, w, f in terms if i in scores) for i in ids}
    weight = config.weight_colour if colour is not None else 0.0
    return {
        i: (s + weight * clip(colour[i])) / (total + weight) if colour is not None and weight and i in colour else s / total
        for i, s in fused.items()
    }
