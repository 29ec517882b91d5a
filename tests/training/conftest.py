"""A tiny labelled folder of real photos: six instances, each the photo and two altered views, small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instrec.training.features import FeatureSet
from tests.photos import ENROLLED, altered_views, sample_photo

INSTANCES = ENROLLED[:6]


@pytest.fixture(scope="session")
def labelled_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labelled")
    for name in INSTANCES:
        photo = sample_photo(name)
        photo.thumbnail((96, 96))
        views = altered_views(photo)
        (root / name).mkdir()
        for stem, image in (("a", photo), ("b", views["crop"]), ("c", views["relit"])):
            image.save(root / name / f"{stem}.png")
    return root


def synthetic_features(instances: int = 10, per_instance: int = 6, dim: int = 32, seed: int = 0) -> FeatureSet:
    """Unit vectors scattered around one centre per instance; view 0 of each is a photo, the rest views."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(instances, dim))
    labels = np.repeat(np.arange(instances), per_instance)
    vectors = centres[labels] + 0.6 * rng.normal(size=(len(labels), dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    images = np.arange(len(labels)) // 2  # two rows per image: the photo and one view of it
    views = np.arange(len(labels)) % 2
    return FeatureSet(vectors.astype(np.float32), labels, images, views)
