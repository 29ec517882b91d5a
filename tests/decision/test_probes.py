"""Query-like probes of enrolled shots, and the shipped strangers."""

from __future__ import annotations

import numpy as np
from PIL import Image

from instrec.decision.probes import PROBE_SIDE, background_photos, probes, strangers


def _shot() -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))


def test_strangers_are_real_photos_shipped_with_instrec():
    photos = background_photos()
    assert len(photos) >= 7 and all(p.mode == "RGB" and min(p.size) >= 200 for p in photos)
    assert len(strangers()) == 2 * len(photos)


def test_two_probes_per_shot_deterministic_per_seed():
    first, again, other = probes(_shot(), 7), probes(_shot(), 7), probes(_shot(), 8)
    assert len(first) == 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, other))


def test_a_scene_probe_holds_the_shot_small_in_the_scene():
    green = Image.new("RGB", (300, 200), (0, 220, 0))
    grey = Image.new("RGB", (640, 480), (128, 128, 128))
    for seed in range(5):
        scene, partial = probes(green, seed, backdrops=[grey])
        assert max(scene.size) == PROBE_SIDE and max(partial.size) >= PROBE_SIDE
        pixels = np.asarray(scene, np.int16)
        shot = (pixels[..., 1] - pixels[..., 0] > 60).mean()
        assert 0.08 < shot < 0.6  # 40-70 % of the long side, tilted: part of the scene, not all of it


def test_without_backdrops_the_shot_lies_on_plain_noise():
    scene, _ = probes(_shot(), 1, backdrops=[])
    assert scene.mode == "RGB" and max(scene.size) == PROBE_SIDE
