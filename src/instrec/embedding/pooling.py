"""Generalised-mean (GeM) pooling and L2 normalisation: feature map -> comparable unit vector.

GeM with p > 1 leans towards the strongest activations (p = 1 is average pooling, p -> inf max
pooling), which suits retrieving the same object among clutter better than plain averaging.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

GEM_EPS = 1e-6  # activations are clamped to this: x**p needs x > 0, and ReLU maps give exact zeros
NORM_EPS = 1e-12


def gem(features: torch.Tensor, p: float) -> torch.Tensor:
    """(N, C, h, w) -> (N, C): ``mean(clamp(x, eps) ** p) ** (1 / p)`` over the spatial cells."""
    return features.clamp(min=GEM_EPS).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length, so a dot product is the cosine similarity."""
    return F.normalize(vectors, p=2.0, dim=1, eps=NORM_EPS)


def region_boxes(height: int, width: int, levels: int) -> list[tuple[int, int, int, int]]:
    """Cell rectangles ``(top, bottom, left, right)``: the whole map first, then R-MAC regions.

    Level ``l`` tiles the map with squares of side ``2 * min(h, w) / (l + 1)`` overlapping by about
    40% (Tolias et al., 2016), so an object filling a third of a cluttered photo gets a region of
    its own instead of being averaged with the clutter.
    """
    boxes = [(0, height, 0, width)]
    for level in range(1, levels + 1):
        side = max(1, round(2 * min(height, width) / (level + 1)))
        tops = _positions(height, side)
        lefts = _positions(width, side)
        boxes += [(t, t + side, l, l + side) for t in tops for l in lefts]
    return list(dict.fromkeys(boxes))  # distinct, whole map still first


def _positions(extent: int, side: int) -> list[int]:
    if extent <= side:
        return [0]
    count = int(np.ceil((extent - side) / (0.6 * side))) + 1
    return np.linspace(0, extent - side, count).round().astype(int).tolist()


def region_vectors(power_map: np.ndarray, boxes: list[tuple[int, int, int, int]], p: float) -> np.ndarray:
    """(R, C) unit GeM vectors of ``boxes`` over one ``clamp(x) ** p`` map (C, h, w), by integral image."""
    channels, height, width = power_map.shape
    integral = np.zeros((channels, height + 1, width + 1), np.float64)
    integral[:, 1:, 1:] = power_map.cumsum(axis=1).cumsum(axis=2)
    t, b, l, r = (np.asarray(side) for side in zip(*boxes))
    sums = integral[:, b, r] - integral[:, t, r] - integral[:, b, l] + integral[:, t, l]  # (C, R)
    pooled = (np.maximum(sums, 0.0) / ((b - t) * (r - l))) ** (1.0 / p)
    pooled = pooled.T.astype(np.float32)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), NORM_EPS)
