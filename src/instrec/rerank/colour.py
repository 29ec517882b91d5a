"""Colour evidence: does the query photo have the candidate's colours?

SIFT sees grey-level gradients only and the global descriptor is trained to be largely colour-blind,
so two packs of one brand that differ in flavour colour, or two textureless objects of the same
shape, look alike to both. A hue-saturation histogram sees exactly that difference and costs
144 bytes per gallery image. Near-white and near-black pixels (catalogue backgrounds, studio
black, specular highlights, shadows) carry no hue and are left out.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

HUE_BINS, SATURATION_BINS = 18, 4
SIGNATURE_SIZE = HUE_BINS * SATURATION_BINS
_WORKING_SIDE = 320  # histograms need no more pixels than this
_WHITE, _BLACK = 235, 25  # a pixel whose darkest channel is >= _WHITE, or brightest <= _BLACK, has no hue


def working_pixels(image: Image.Image) -> np.ndarray:
    """uint8 RGB (h, w, 3), long side at most 320 px: what signatures are computed from."""
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    scale = _WORKING_SIDE / max(h, w)
    if scale < 1:  # an explicit size of at least 1 px: OpenCV's own rounding of fx/fy gives a thin strip none
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def colour_signature(rgb: np.ndarray) -> np.ndarray:
    """float32 (72,) hue x saturation histogram of an RGB array, summing to 1 (all zeros if no pixel has hue)."""
    return _histogram(*_hue_saturation(rgb))


def _hue_saturation(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HSV pixels and the mask of those that have a hue (per-channel minimum/maximum by elementwise
    ufuncs: a reduction over the 3-wide colour axis is 30x slower)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.size == 0:
        return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.uint8)
    darkest = np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    brightest = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    mask = ((darkest < _WHITE) & (brightest > _BLACK)).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV), mask


def _histogram(hsv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if hsv.size == 0:
        return np.zeros(SIGNATURE_SIZE, np.float32)
    histogram = cv2.calcHist(
        [np.ascontiguousarray(hsv)], [0, 1], np.ascontiguousarray(mask), [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]
    ).ravel()
    total = float(histogram.sum())
    return (histogram / total if total > 0 else histogram).astype(np.float32)


def colour_similarity(a: np.ndarray, b: np.ndarray) -> float | None:
    """Bhattacharyya coefficient in [0, 1] (1 = same colours); None if either has no hued pixel."""
    if a.sum() <= 0 or b.sum() <= 0:
        return None
    return float(np.sqrt(np.maximum(a, 0) * np.maximum(b, 0)).sum())
