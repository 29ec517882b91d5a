"""Image -> network input, keeping the aspect ratio: no crop, no padding, little distortion.

Objects photographed in different framings must still match, so the whole image is kept and only
scaled so its long side has a fixed length. Each side is then rounded to a multiple the backbone
needs (32 px for EfficientNet-Lite, where it makes SAME padding a constant that the ONNX graph folds
into its convolutions); that stretches common aspect ratios by at most a few per cent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from PIL import Image


def resized_size(width: int, height: int, long_side: int, multiple: int = 1) -> tuple[int, int]:
    """(width, height) scaled so the longer one equals ``long_side``, each rounded to the nearest
    ``multiple`` (at least one): 100x400 -> 56x224, or 64x224 with ``multiple=32``."""
    scale = long_side / max(width, height)
    return _round_to(width * scale, multiple), _round_to(height * scale, multiple)


def _round_to(side: float, multiple: int) -> int:
    return max(1, round(side / multiple)) * multiple


def to_input(image: Image.Image, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB float32 array (3, h, w) of ``size`` = (w, h), resized (antialiased bilinear) and normalised."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    # (p / 255 - mean) / std as one multiply-add straight into the planar layout: a third of the
    # time of the step-by-step version.
    std32 = np.asarray(std, np.float32)[:, None, None]
    out = np.empty((3, size[1], size[0]), np.float32)
    np.multiply(np.asarray(rgb).transpose(2, 0, 1), 1.0 / (255.0 * std32), out=out)
    out -= np.asarray(mean, np.float32)[:, None, None] / std32
    return out


def batches_by_size(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal input size, in chunks of at most ``batch_size``.

    Equal sizes stack without padding, and padding would change the pooled vector.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, size in enumerate(sizes):
        groups[size].append(index)
    return [members[start : start + batch_size] for members in groups.values() for start in range(0, len(members), batch_size)]
