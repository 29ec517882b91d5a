"""1-shot measurements on cached descriptors: each instance's first photo enrolled, its others queried."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneShot:
    top1: float  # share of queries whose nearest shot is their own instance's
    margin: float  # mean of (own shot's cosine - best other shot's): tells apart runs that tie on top-1

    def better_than(self, other: "OneShot | None") -> bool:
        return other is None or (self.top1, self.margin) > (other.top1, other.margin)


def first_photos(labels: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Mask of each instance's first photo (lowest image index): its 1 shot."""
    shot = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        shot[rows[np.argmin(images[rows])]] = True
    return shot


def one_shot(vectors: np.ndarray, labels: np.ndarray, images: np.ndarray) -> OneShot:
    """``vectors``: unit rows of the photos only (no augmented views) of at least 2 instances."""
    shot = first_photos(labels, images)
    queries = ~shot
    if not queries.any():
        return OneShot(float("nan"), float("nan"))
    similarity = vectors[queries] @ vectors[shot].T
    shot_labels, query_labels = labels[shot], labels[queries]
    own = similarity[shot_labels[None, :] == query_labels[:, None]]
    others = np.where(shot_labels[None, :] == query_labels[:, None], -np.inf, similarity).max(axis=1)
    top1 = float((shot_labels[similarity.argmax(axis=1)] == query_labels).mean())
    return OneShot(top1, float((own - others).mean()))


@dataclass
class EarlyStopping:
    """Keeps the epoch with the best validation figure; says when ``patience`` epochs brought none better.

    Without validation instances (``validation=False``) every epoch is the best so far and none stops early.
    """

    patience: int
    validation: bool
    best: OneShot | None = None  # of epoch ``best_epoch``; epoch 0 is the starting point
    best_epoch: int = 0

    def improved(self, epoch: int, measured: OneShot | None) -> bool:
        """Whether ``epoch`` (measured ``measured``) is the new best one."""
        if not self.validation or (measured is not None and measured.better_than(self.best)):
            self.best, self.best_epoch = measured, epoch
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return self.validation and epoch - self.best_epoch >= self.patience
