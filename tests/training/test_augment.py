"""Augmented views: the same view for the same (seed, image, view, epoch), whichever thread draws it."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from instrec.training.augment import augmented_view


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))


def test_a_view_depends_on_its_seeds_not_on_order():
    photo = _photo()
    first = np.asarray(augmented_view(photo, 0, 1, 2, (64, 64), 3))
    augmented_view(photo, 0, 1, 5, (64, 64), 3)  # another draw in between
    assert np.array_equal(np.asarray(augmented_view(photo, 0, 1, 2, (64, 64), 3)), first)
    assert not np.array_equal(np.asarray(augmented_view(photo, 0, 1, 2, (64, 64), 4)), first)


def test_views_drawn_on_many_threads_are_those_drawn_on_one():
    photo = _photo()

    def view(number: int) -> np.ndarray:
        return np.asarray(augmented_view(photo, 0, 7, number, (64, 64), 1))

    alone = [view(n) for n in range(64)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(view, range(64)))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))
