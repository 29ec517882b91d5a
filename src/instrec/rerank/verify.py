"""Geometric verification: do the query's keypoints map onto a candidate's by one geometric model?

Tentative matches use Lowe's ratio test with the second neighbour taken from a *different
candidate* (or a different group, e.g. another instance), not from the same image: a descriptor is
kept only if it is distinctive across the whole shortlist, which rejects background texture shared
by many images far better than a per-pair ratio test. The surviving matches of each candidate are
then fitted by RANSAC (homography by default; fundamental matrix for strongly 3-D objects) and the
inliers counted. The cost is one matrix product per candidate (in bfloat16 where the CPU has AMX)
plus one small RANSAC per candidate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Hashable, Literal, Sequence

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

from instrec.rerank.features import LocalFeatures

Model = Literal["homography", "fundamental", "affine"]
Precision = Literal["auto", "float32", "bfloat16"]
_MIN_POINTS = {"homography": 4, "fundamental": 8, "affine": 3}
# Squared distances below this are float32 rounding around a similarity of 1 (the same descriptor): the
# matrix product may round two copies of one descriptor apart, which must not make either distinctive.
_SAME_DESCRIPTOR = 1e-5


@dataclass(frozen=True)
class Verification:
    """Per candidate, in the order given: ratio-test matches and RANSAC inliers among them."""

    matches: np.ndarray  # int64 (n_candidates,)
    inliers: np.ndarray  # int64 (n_candidates,)
    # Per candidate, where its inliers lie in the query: (left, top, right, bottom) in the query's
    # working frame (LocalFeatures.xy), None without inliers. Shows the user what matched.
    boxes: tuple[tuple[float, float, float, float] | None, ...] = ()


def tentative_matches(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    ratio: float = 0.8,
    groups: Sequence[Hashable] | None = None,
    precision: Precision = "float32",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per candidate, (query keypoint indices, candidate keypoint indices) passing the ratio test.

    A query keypoint matches candidate j at j's nearest keypoint when that distance is below
    ``ratio`` times the distance to the nearest keypoint of any candidate in another group
    (``groups[j]``, default: every candidate its own group), and below ``ratio`` times the
    distance to j's second-nearest keypoint. ``precision``: of
    the similarities the ratio test compares (:func:`best_similarities`).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    n_cand = len(candidates)
    if len(query) == 0 or sum(len(c) for c in candidates) == 0:
        return [empty] * n_cand
    keys = list(range(n_cand)) if groups is None else list(groups)
    if len(keys) != n_cand:
        raise ValueError(f"{len(keys)} groups for {n_cand} candidates")
    numbering: dict[Hashable, int] = {}
    group_of = np.array([numbering.setdefault(k, len(numbering)) for k in keys], np.int64)
    n_groups = len(numbering)

    q = query.rootsift()
    gallery = [c.rootsift() for c in candidates]
    best_sim = best_similarities(q, gallery, precision)

    # Best similarity per group, padded with an empty group so every row has another one.
    group_sim = np.full((len(q), max(n_groups, 2)), -np.inf, np.float32)
    for g in range(n_groups):
        members = np.flatnonzero(group_of == g)
        group_sim[:, g] = best_sim[:, members].max(axis=1)
    top2 = np.argsort(-group_sim, axis=1)[:, :2]
    first, second = np.take_along_axis(group_sim, top2, axis=1).T
    # Best similarity among groups other than each candidate's own (-inf with a single group).
    other = np.where(top2[:, :1] == group_of[None, :], second[:, None], first[:, None])
    d_other = np.maximum(2.0 - 2.0 * other, 0.0)
    d_best = np.maximum(2.0 - 2.0 * best_sim, 0.0)
    ok = d_best < (ratio * ratio) * d_other

    out = [empty] * n_cand
    for j, descriptors in enumerate(gallery):
        rows = np.flatnonzero(ok[:, j])
        if not len(rows):
            continue
        # The nearest keypoint is looked up only where the ratio test passed, and there the second
        # nearest within the candidate competes too: Lowe's own test, all there is when the gallery
        # holds one instance (chance matches then pass the cross-candidate test unopposed).
        similarities = q[rows] @ descriptors.T
        nearest = similarities.argmax(axis=1)
        if descriptors.shape[0] > 1:
            best, runner_up = (-np.partition(-similarities, 1, axis=1)[:, :2]).T
            distinct = np.maximum(2.0 - 2.0 * best, _SAME_DESCRIPTOR) < (ratio * ratio) * np.maximum(
                2.0 - 2.0 * runner_up, _SAME_DESCRIPTOR
            )
            rows, nearest = rows[distinct], nearest[distinct]
        out[j] = (rows, nearest)
    return out


def best_similarities(query: np.ndarray, gallery: Sequence[np.ndarray], precision: Precision = "float32") -> np.ndarray:
    """(n_query, n_candidates) float32: each query descriptor's best similarity within each candidate
    (-inf for a candidate without keypoints). Rows are non-negative unit vectors (RootSIFT).

    One product per candidate, reduced at once: the whole query x shortlist matrix (tens of MB)
    would be written and read back from memory. "bfloat16" runs the products on torch's bfloat16
    kernels, faster on CPUs with AMX tiles, at 3 significant digits; "auto" picks it there.
    """
    out = np.full((len(query), len(gallery)), -np.inf, np.float32)
    if _resolved(precision) == "float32":
        for j, descriptors in enumerate(gallery):
            if len(descriptors):
                out[:, j] = (query @ descriptors.T).max(axis=1)
        return out
    import torch  # only here: importing it takes seconds, and the float32 path needs none of it

    with torch.inference_mode():
        q = _zero_padded(query)
        for j, descriptors in enumerate(gallery):
            if len(descriptors):
                best = torch.matmul(q, _zero_padded(descriptors).T).amax(dim=1)
                out[:, j] = best[: len(query)].float().numpy()
    return out


def _zero_padded(descriptors: np.ndarray, multiple: int = 128) -> torch.Tensor:
    """bfloat16 rows padded with zeros to a multiple of ``multiple``.

    Every new matrix shape makes oneDNN build a new kernel (about 2 ms, more than the product
    itself), so the shapes are kept to a few. Zero rows change no maximum: RootSIFT vectors are
    non-negative, so every real similarity is >= 0.
    """
    import torch

    padded = torch.zeros((-(-len(descriptors) // multiple) * multiple, descriptors.shape[1]), dtype=torch.bfloat16)
    padded[: len(descriptors)] = torch.from_numpy(descriptors)
    return padded


def _resolved(precision: Precision) -> Literal["float32", "bfloat16"]:
    if precision == "auto":
        return "bfloat16" if _fast_bfloat16() else "float32"
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"unknown matching precision {precision!r}")
    return precision


@functools.cache
def _fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX); elsewhere torch emulates it, slower than float32.

    Linux lists the CPU's flags in /proc/cpuinfo, which spares importing torch where AMX is absent."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        import torch

        return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


def inlier_mask(
    src: np.ndarray,
    dst: np.ndarray,
    model: Model = "homography",
    threshold: float = 6.0,
    iters: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """bool (n,): which pairs src[i] -> dst[i] are RANSAC inliers of ``model`` (none if too few points)."""
    none = np.zeros(len(src), bool)
    if len(src) < _MIN_POINTS[model]:
        return none
    src = np.ascontiguousarray(src, np.float32)
    dst = np.ascontiguousarray(dst, np.float32)
    cv2.setRNGSeed(seed)  # RANSAC sampling: same matches, same inliers
    if model == "homography":
        _, mask = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=iters, confidence=0.995)
    elif model == "fundamental":
        _, mask = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, threshold / 2, 0.995, iters)
    else:
        _, mask = cv2.estimateAffine2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=iters, confidence=0.995
        )
    return none if mask is None else mask.ravel().astype(bool)


def verify(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    ratio: float = 0.8,
    model: Model = "homography",
    threshold: float = 6.0,
    iters: int = 1000,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
    precision: Precision = "float32",
) -> Verification:
    """Ratio-test matches, RANSAC inliers (:func:`inlier_mask`) and the query box they lie in, of
    ``query`` against each candidate."""
    pairs = tentative_matches(query, candidates, ratio, groups, precision)
    matches = np.array([len(qi) for qi, _ in pairs], np.int64)
    masks = [inlier_mask(query.xy[qi], cand.xy[ci], model, threshold, iters, seed) for (qi, ci), cand in zip(pairs, candidates)]
    boxes = tuple(_bounds(query.xy[qi[mask]]) for (qi, _), mask in zip(pairs, masks))
    inliers = np.array([int(mask.sum()) for mask in masks], np.int64)
    return Verification(matches=matches, inliers=inliers, boxes=boxes)


def _bounds(xy: np.ndarray) -> tuple[float, float, float, float] | None:
    if not len(xy):
        return None
    (left, top), (right, bottom) = xy.min(axis=0), xy.max(axis=0)
    return float(left), float(top), float(right), float(bottom)
