from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instrec.rerank.colour import NO_HUE, QueryColours, colour_signature, colour_similarity, hue_map, working_pixels

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


def test_query_rows_are_looked_at_through_their_boxes():
    photo = Image.fromarray(canvas(RED, BLUE, size=(400, 200)))
    colours = QueryColours(photo, [(0, 1, 0, 1), (0, 1, 0, 0.5), (0.2, 0.8, 0.5, 1)])
    red, blue = colour_signature(canvas(RED)), colour_signature(canvas(BLUE))
    assert len(colours) == 3
    assert colour_similarity(colours.signature(1), red) == pytest.approx(1.0)
    assert colour_similarity(colours.signature(2), blue) == pytest.approx(1.0)
    assert colour_similarity(colours.signature(0), red) == pytest.approx(np.sqrt(0.5), abs=0.01)


def test_large_photos_are_looked_at_small():
    assert working_pixels(Image.new("RGB", (1600, 800))).shape == (160, 320, 3)
    assert working_pixels(Image.new("L", (100, 50))).shape == (50, 100, 3)


def _placed(product: np.ndarray, at: tuple[int, int], scale: float, size=(480, 360)) -> Image.Image:
    """A grey shelf photo with ``product`` resized by ``scale`` and pasted with its corner at ``at``."""
    shelf = np.full((size[1], size[0], 3), 128, np.uint8)
    small = np.asarray(Image.fromarray(product).resize((round(product.shape[1] * scale), round(product.shape[0] * scale))))
    shelf[at[1] : at[1] + small.shape[0], at[0] : at[0] + small.shape[1]] = small
    return Image.fromarray(shelf)


GREEN = (30, 180, 40)


def test_the_hue_map_is_the_images_hue_with_no_hue_for_white_and_padding():
    hue = hue_map(canvas(RED, WHITE, size=(120, 60)))
    assert hue.shape == (48, 48)
    assert (hue[:24, :20] != NO_HUE).all() and (hue[:24, 28:48] == NO_HUE).all()  # white half
    assert (hue[24:] == NO_HUE).all()  # padding below a 2:1 image


def test_aligned_agreement_tells_the_same_print_in_another_colour():
    """Verification placed the catalogue image at (100, 50), half size: are its colours there?"""
    catalogue, recoloured = canvas(RED, BLUE, size=(200, 120)), canvas(GREEN, BLUE, size=(200, 120))
    query = QueryColours(_placed(catalogue, (100, 50), 0.5), [(0, 1, 0, 1)])
    catalogue_to_query = np.array([[0.5, 0, 100], [0, 0.5, 50], [0, 0, 1]])
    query_to_catalogue = np.linalg.inv(catalogue_to_query)  # feature frames = pixels: neither image > 640 px
    same = query.aligned_agreement(hue_map(catalogue), 200 / 48, query_to_catalogue, 1.0)
    other = query.aligned_agreement(hue_map(recoloured), 200 / 48, query_to_catalogue, 1.0)
    assert same > 0.9 and 0.3 < other < 0.6  # the blue half still agrees
    elsewhere = np.linalg.inv(np.array([[0.5, 0, 300], [0, 0.5, 200], [0, 0, 1]]))  # on the grey shelf
    assert query.aligned_agreement(hue_map(catalogue), 200 / 48, elsewhere, 1.0) < 0.1
    off_the_photo = np.linalg.inv(np.array([[0.5, 0, 5000], [0, 0.5, 5000], [0, 0, 1]]))
    assert query.aligned_agreement(hue_map(catalogue), 200 / 48, off_the_photo, 1.0) is None


def test_near_limits_the_check_to_the_hull_of_the_given_points():
    """A map fitted to a few inliers on the left half is right there and wrong beyond (here: the
    catalogue is placed twice too wide, so its blue half lands on an orange backdrop)."""
    catalogue = canvas(RED, BLUE, size=(200, 120))
    photo = np.array(_placed(catalogue, (100, 50), 0.5))
    photo[50:110, 150:300] = (230, 120, 20)  # orange where the loose map puts the blue half
    query = QueryColours(Image.fromarray(photo), [(0, 1, 0, 1)])
    loose = np.linalg.inv(np.array([[1.0, 0, 100], [0, 0.5, 50], [0, 0, 1]]))  # right at x = 100, 2x too wide
    inliers_on_red = np.array([[102, 55], [130, 55], [102, 105], [120, 100]], np.float64)
    whole = query.aligned_agreement(hue_map(catalogue), 200 / 48, loose, 1.0)
    near = query.aligned_agreement(hue_map(catalogue), 200 / 48, loose, 1.0, near=inliers_on_red)
    assert whole < 0.5 and near > 0.9
    recoloured = canvas(GREEN, BLUE, size=(200, 120))  # another flavour: fails among its inliers too
    assert query.aligned_agreement(hue_map(recoloured), 200 / 48, loose, 1.0, near=inliers_on_red) < 0.1
    assert query.aligned_agreement(hue_map(catalogue), 200 / 48, loose, 1.0, near=inliers_on_red[:1] * 0) is None
