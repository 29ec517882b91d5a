"""Supervised (learned) whitening, after Radenovic, Tolias and Chum (TPAMI 2019): a labelled baseline.

Whiten the within-instance covariance (the scatter of an instance's photos and views around their
mean), so directions along which one instance varies count less; then rotate to the principal
directions of all descriptors in that space and keep ``dims`` of them: those where instances differ
most relative to how much each varies. It is a linear map after pooling, an
:class:`~instrec.embedding.whitening.Whitening`, so the descriptor applies it as it applies PCA-whitening.
"""

from __future__ import annotations

import numpy as np

from instrec.embedding.whitening import Whitening
from instrec.errors import InstrecError

WITHIN_POWER = 1.0  # the within-instance covariance is fully whitened


def fit_supervised_whitening(vectors: np.ndarray, labels: np.ndarray, dims: int, shrinkage: float = 0.1) -> Whitening:
    """``shrinkage`` adds that share of the mean within-instance variance to every direction: with
    fewer photos than dimensions the within-instance covariance is singular."""
    vectors = np.asarray(vectors, np.float64)
    if not 1 <= dims <= vectors.shape[1]:
        raise InstrecError(f"whitening: dims must be in [1, {vectors.shape[1]}], got {dims}")
    mean = vectors.mean(axis=0)
    centred = np.empty_like(vectors)
    for label in np.unique(labels):
        rows = labels == label
        centred[rows] = vectors[rows] - vectors[rows].mean(axis=0)
    within = centred.T @ centred / len(vectors)
    variance, directions = np.linalg.eigh(within)
    variance = np.maximum(variance, 0) + shrinkage * max(float(variance.mean()), 1e-12)
    whiten = directions / np.sqrt(variance)  # x @ whiten has unit within-instance variance in every direction
    spread, rotation = np.linalg.eigh(np.cov((vectors - mean) @ whiten, rowvar=False))
    order = np.argsort(spread)[::-1][:dims]
    return Whitening(
        mean.astype(np.float32),
        (whiten @ rotation[:, order]).astype(np.float32),
        float(spread[order].sum() / spread.sum()),
        len(vectors),
        WITHIN_POWER,
        shrinkage,
    )
