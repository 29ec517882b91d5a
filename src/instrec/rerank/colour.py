"""Colour evidence: does the part of the query that matched a candidate have the candidate's colours?

SIFT sees grey-level gradients only and the global descriptor is trained to be largely colour-blind,
so two packs of one brand that differ in flavour colour, or two textureless objects of the same
shape, look alike to both. A hue-saturation histogram sees exactly that difference and costs
144 bytes per gallery image. Near-white and near-black pixels (catalogue backgrounds, studio
black, specular highlights, shadows) carry no hue and are left out.

On the query side the histogram is taken over the region whose vector matched the candidate best
(or the whole photo), so a product filling a corner of a shelf photo is compared by its own
colours, not the shelf's.

A histogram cannot tell a pack whose cap and label swapped colours, and a region box takes in
shelf and occluders. Once verification has found where the candidate lies in the query, a small
stored hue map (48 px long side, 2.3 KB) is warped there and compared pixel by pixel
(:meth:`QueryColours.aligned_agreement`): the same print in another flavour colour fails it.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from PIL import Image

HUE_BINS, SATURATION_BINS = 18, 4
SIGNATURE_SIZE = HUE_BINS * SATURATION_BINS
_WORKING_SIDE = 320  # histograms need no more pixels than this
_WHITE, _BLACK = 235, 25  # a pixel whose darkest channel is >= _WHITE, or brightest <= _BLACK, has no hue
HUE_MAP_SIDE = 48
NO_HUE = 255  # hue map value of a pixel without a stable hue (OpenCV hues are 0-179)
_MAP_SATURATION = 60  # paler pixels' hue is too unstable to compare pixel by pixel
_QUERY_SATURATION = 40  # the query side is allowed paler: lighting washes colours out
_HUE_TOLERANCE = 12  # in OpenCV hue units: +-24 degrees
_MIN_ALIGNED_PIXELS = 30
_NEAR_MARGIN = 6  # working pixels around the hull of the points a check is limited to


def working_pixels(image: Image.Image) -> np.ndarray:
    """uint8 RGB (h, w, 3), long side at most 320 px: what signatures are computed from."""
    rgb = np.asarray(image.convert("RGB"))
    scale = _WORKING_SIDE / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
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
    histogram = cv2.calcHist([np.ascontiguousarray(hsv)], [0, 1], np.ascontiguousarray(mask),
                             [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]).ravel()
    total = float(histogram.sum())
    return (histogram / total if total > 0 else histogram).astype(np.float32)


def hue_map(rgb: np.ndarray) -> np.ndarray:
    """uint8 (48, 48): the image's hue at 48 px on its long side, top-left aligned; :data:`NO_HUE`
    where a pixel is white, black or pale, and in the padding."""
    height, width = rgb.shape[:2]
    scale = HUE_MAP_SIDE / max(height, width)
    size = (max(1, min(HUE_MAP_SIDE, round(width * scale))), max(1, min(HUE_MAP_SIDE, round(height * scale))))
    hsv, mask = _hue_saturation(cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA))
    out = np.full((HUE_MAP_SIDE, HUE_MAP_SIDE), NO_HUE, np.uint8)
    stable = (mask > 0) & (hsv[..., 1] > _MAP_SATURATION)
    out[: size[1], : size[0]] = np.where(stable, hsv[..., 0], NO_HUE)
    return out


def colour_similarity(a: np.ndarray, b: np.ndarray) -> float | None:
    """Bhattacharyya coefficient in [0, 1] (1 = same colours); None if either has no hued pixel."""
    if a.sum() <= 0 or b.sum() <= 0:
        return None
    return float(np.sqrt(np.maximum(a, 0) * np.maximum(b, 0)).sum())


class QueryColours:
    """Signatures of a query photo's search rows, computed on demand.

    ``boxes`` is (R, 4) float: each row's (top, bottom, left, right) as fractions of the photo,
    row 0 the whole photo (see :meth:`instrec.embedding.Embedder.regions`).
    """

    def __init__(self, image: Image.Image, boxes: np.ndarray | Sequence[Sequence[float]]):
        pixels = working_pixels(image)
        self._hsv, self._mask = _hue_saturation(pixels)  # once, cropped per row
        self._per_original_pixel = pixels.shape[1] / image.size[0]
        self._boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._boxes)

    def signature(self, row: int) -> np.ndarray:
        if row not in self._cache:
            height, width = self._mask.shape
            top, bottom, left, right = self._boxes[row]
            rows = slice(int(round(top * height)), int(round(bottom * height)))
            columns = slice(int(round(left * width)), int(round(right * width)))
            self._cache[row] = _histogram(self._hsv[rows, columns], self._mask[rows, columns])
        return self._cache[row]

    def aligned_agreement(self, candidate_hue: np.ndarray, map_to_candidate: float,
                          query_to_candidate: np.ndarray, query_scale: float,
                          near: np.ndarray | None = None) -> float | None:
        """Share of the candidate's hued pixels whose query pixel has the same hue, once the
        candidate's :func:`hue_map` is warped into the query by a verified 3 x 3 map.

        ``map_to_candidate``: candidate feature-frame pixels per hue-map pixel;
        ``query_to_candidate``: the fitted map between the two feature frames; ``query_scale``:
        the query's original pixels per feature-frame pixel. ``near`` ((n, 2) query feature-frame
        points, e.g. the fit's inliers) limits the comparison to their convex hull and a small
        margin: a map fitted to a few inliers is right among them, not necessarily beyond. None
        when too little of the candidate lands there to judge.
        """
        try:
            candidate_to_query = np.linalg.inv(query_to_candidate)
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(candidate_to_query).all():
            return None
        to_working = query_scale * self._per_original_pixel
        warp = np.diag([to_working, to_working, 1.0]) @ candidate_to_query @ np.diag([map_to_candidate, map_to_candidate, 1.0])
        height, width = self._mask.shape
        warped = cv2.warpPerspective(candidate_hue, warp, (width, height), flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=NO_HUE)
        placed = warped != NO_HUE
        if near is not None:
            placed &= self._hull_mask(np.asarray(near, np.float64) * to_working)
        if placed.sum() < _MIN_ALIGNED_PIXELS:
            return None
        difference = np.abs(self._hsv[..., 0].astype(np.int16) - warped.astype(np.int16))
        difference = np.minimum(difference, 180 - difference)
        same = (difference <= _HUE_TOLERANCE) & (self._mask > 0) & (self._hsv[..., 1] > _QUERY_SATURATION)
        return float(same[placed].mean())

    def _hull_mask(self, points: np.ndarray) -> np.ndarray:
        """bool (h, w) of the working frame: the points' convex hull widened by ``_NEAR_MARGIN``."""
        mask = np.zeros(self._mask.shape, np.uint8)
        if len(points):
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
            mask = cv2.dilate(mask, np.ones((2 * _NEAR_MARGIN + 1,) * 2, np.uint8))
        return mask > 0
