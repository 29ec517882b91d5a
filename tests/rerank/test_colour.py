from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instrec.rerank.colour import colour_signature, colour_similarity, working_pixels

RED, BLUE, WHITE, BLACK = (200, 30, 30), (30, 40, 200), (255, 255, 255), (0, 0, 0)


def canvas(*fills, size=(120, 60)) -> np.ndarray:
    """Vertical stripes of the given colours, left to right."""
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    for i, colour in enumerate(fills):
        rgb[:, i * size[0] // len(fills) : (i + 1) * size[0] // len(fills)] = colour
    return rgb


def test_a_signature_is_a_distribution_that_ignores_white_and_black():
    red_on_white = colour_signature(canvas(WHITE, RED, BLACK))
    assert red_on_white.shape == (72,) and red_on_white.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(red_on_white, colour_signature(canvas(RED)))


def test_similarity_tells_colours_apart_and_has_no_opinion_without_hue():
    red, blue = colour_signature(canvas(RED)), colour_signature(canvas(BLUE))
    assert colour_similarity(red, red) == pytest.approx(1.0)
    assert colour_similarity(red, blue) == pytest.approx(0.0)
    half = colour_signature(canvas(RED, BLUE))
    assert colour_similarity(red, half) == pytest.approx(np.sqrt(0.5))
    blank = colour_signature(canvas(WHITE, BLACK))
    assert not blank.any() and colour_similarity(red, blank) is None


def test_large_photos_are_looked_at_small():
    assert working_pixels(Image.new("RGB", (1600, 800))).shape == (160, 320, 3)
    assert working_pixels(Image.new("L", (100, 50))).shape == (50, 100, 3)
