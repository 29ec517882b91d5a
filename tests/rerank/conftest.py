"""Real textured photos (scikit-image samples) and perspective-warped views of them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from instrec.profiles import RerankTuning
from instrec.rerank import LocalFeatures, LocalVerifier
from tests.photos import sample_photo

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def warped(photo: Image.Image, seed: int, background: Image.Image | None = None) -> Image.Image:
    """The photo shrunk, perspective-warped and pasted onto ``background`` (grey if None)."""
    rng = np.random.default_rng(seed)
    src = np.asarray(photo)
    h, w = src.shape[:2]
    canvas = (
        np.full((480, 640, 3), 120, np.uint8)
        if background is None
        else np.asarray(background.convert("RGB").resize((640, 480))).copy()
    )
    scale = rng.uniform(0.5, 0.7) * min(640 / w, 480 / h)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.08, 0.08, (4, 2)) * [w * scale, h * scale]
    target = (
        corners * scale + jitter + [rng.uniform(20, 640 - w * scale - 20 + 1e-3), rng.uniform(20, 480 - h * scale - 20 + 1e-3)]
    ).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    pasted = cv2.warpPerspective(src, matrix, (640, 480))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, (640, 480)) > 0
    canvas[mask] = pasted[mask]
    return Image.fromarray(canvas)


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return {name: sample_photo(name) for name in PHOTOS}


@pytest.fixture(scope="session")
def verifier() -> LocalVerifier:
    return LocalVerifier(RerankTuning())


@pytest.fixture(scope="session")
def gallery_features(photos, verifier) -> dict[int, LocalFeatures]:
    return {pk: verifier.extract(photos[name]) for pk, name in enumerate(PHOTOS, start=1)}
