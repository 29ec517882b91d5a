"""Image -> network input, keeping the aspect ratio: no crop, no padding, no distortion.

Objects photographed in different framings must still match, so the whole image is kept and only
scaled so its long side has a fixed length.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from PIL import Image


def resized_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer one equals ``long_side``; e.g. 100x400 -> 56x224."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scaled_side(max_side: int, scale: float) -> int:
    """Long side for one of the multi-scale passes."""
    return max(1, round(max_side * scale))


def to_input(
    image: Image.Image, long_side: int, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """RGB float32 array (3, h, w), resized (antialiased bilinear) and normalised for the backbone."""
    size = resized_size(*image.size, long_side)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def batches_by_size(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal input size, in chunks of at most ``batch_size``.

    Equal sizes stack without padding, and padding would change the pooled vector.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, size in enumerate(sizes):
        groups[size].append(index)
    return [
        members[start : start + batch_size]
        for members in groups.values()
        for start in range(0, len(members), batch_size)
    ]
