from __future__ import annotations

import numpy as np
from PIL import Image

from instrec.embedding.preprocess import batches_by_size, resized_size, to_input


def test_long_side_is_resized_and_aspect_ratio_kept() -> None:
    assert resized_size(100, 400, 224) == (56, 224)
    assert resized_size(600, 400, 224) == (224, 149)
    assert resized_size(10, 10, 224) == (224, 224)  # small images are enlarged, not padded
    assert resized_size(1, 5000, 224) == (1, 224)


def test_input_is_chw_normalised_without_crop() -> None:
    image = Image.new("L", (100, 400), color=255)  # grey mode is converted to RGB
    array = to_input(image, (56, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert array.shape == (3, 224, 56) and array.dtype == np.float32
    assert np.allclose(array, 1.0)


def test_sides_round_to_the_nearest_multiple() -> None:
    assert resized_size(320, 240, 224, multiple=32) == (224, 160)  # 4:3 -> 1.40, within 5 %
    assert resized_size(1920, 1080, 224, multiple=32) == (224, 128)
    assert resized_size(100, 400, 224, multiple=32) == (64, 224)
    assert resized_size(1, 5000, 224, multiple=32) == (32, 224)  # never below one multiple
    assert resized_size(600, 400, 158, multiple=32) == (160, 96)  # the long side rounds too


def test_batches_group_equal_sizes_and_respect_batch_size() -> None:
    sizes = [(2, 3), (4, 5), (2, 3), (2, 3), (4, 5)]
    assert batches_by_size(sizes, 2) == [[0, 2], [3], [1, 4]]
