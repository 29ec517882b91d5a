"""The frozen backbone's descriptors of every training photo and of its augmented views, computed once.

A head trains on these cached vectors for many epochs; the backbone never runs again. The cache
file is keyed by what decides its content (data, descriptor, views, seed), so a resumed or repeated
run reuses it and any other run recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from instrec.config import LimitsConfig
from instrec.images import load_image
from instrec.training.augment import augmented_view
from instrec.training.data import LabelledFolder

Progress = Callable[[int, int], None]  # (images done, total)


@dataclass(frozen=True)
class FeatureSet:
    vectors: np.ndarray  # (n, d) float32 unit rows: the raw pooled descriptors
    labels: np.ndarray  # (n,) instance index
    images: np.ndarray  # (n,) image index within the whole folder
    views: np.ndarray  # (n,) 0 = the photo itself, 1.. = augmented views

    def of_instances(self, instances: np.ndarray) -> "FeatureSet":
        keep = np.isin(self.labels, instances)
        return FeatureSet(self.vectors[keep], self.labels[keep], self.images[keep], self.views[keep])

    @property
    def originals(self) -> "FeatureSet":
        """Only the photos themselves (no augmented views): what validation and evaluation measure on."""
        keep = self.views == 0
        return FeatureSet(self.vectors[keep], self.labels[keep], self.images[keep], self.views[keep])

    def save(self, path: Path, key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez(handle, vectors=self.vectors, labels=self.labels, images=self.images, views=self.views, key=key)

    @classmethod
    def load(cls, path: Path) -> tuple["FeatureSet", str]:
        """The features saved in ``path`` and the key they were saved under."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["vectors"], data["labels"], data["images"], data["views"]), str(data["key"])


def embed_folder(
    embedder: Any,
    folder: LabelledFolder,
    views: int,
    seed: int,
    limits: LimitsConfig = LimitsConfig(),
    progress: Progress | None = None,
) -> FeatureSet:
    """Each photo and ``views`` augmented views of it through ``embedder`` (one that does not whiten)."""
    parts, labels, images, view_ids = [], [], [], []
    total, image_index = folder.image_count, 0
    for label, files in enumerate(folder.files):
        for path in files:
            photo = load_image(path, limits).pixels
            batch = [photo] + [augmented_view(photo, seed, image_index, v) for v in range(1, views + 1)]
            parts.append(embedder.embed(batch))
            labels += [label] * len(batch)
            images += [image_index] * len(batch)
            view_ids += list(range(len(batch)))
            image_index += 1
            if progress is not None:
                progress(image_index, total)
    return FeatureSet(np.concatenate(parts), np.array(labels), np.array(images), np.array(view_ids))


def cached_features(cache: Path, key: str, compute: Callable[[], FeatureSet]) -> FeatureSet:
    """The features in ``cache`` if they were computed from ``key``, else ``compute()`` saved there."""
    if cache.is_file():
        cached, cached_key = FeatureSet.load(cache)
        if cached_key == key:
            return cached
    features = compute()
    features.save(cache, key)
    return features
