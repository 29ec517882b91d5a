"""Generalised-mean (GeM) pooling and L2 normalisation: feature map -> comparable unit vector.

GeM with p > 1 leans towards the strongest activations (p = 1 is average pooling, p -> inf max
pooling), which suits retrieving the same object among clutter better than plain averaging.
"""

from __future__ import annotations

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
