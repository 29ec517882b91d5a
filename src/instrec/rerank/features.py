"""Local features: the strongest SIFT keypoints of an image, stored compactly, used as RootSIFT.

Raw OpenCV SIFT descriptors are integers in [0, 255], so keeping them as uint8 is lossless
(128 B per keypoint); RootSIFT (Arandjelovic & Zisserman 2012: L1-normalise, then square root)
is derived on the fly because it matches better under Euclidean distance. Packed, a keypoint costs
132 bytes (descriptor + two uint16 coordinates in 1/16 pixel), followed by the image's colour
signature (144 bytes, see :mod:`instrec.rerank.colour`), so verification never re-reads or
re-decodes gallery images. Features packed before colour signatures existed unpack without them,
and those packed with the hue map of a former colour check unpack with it ignored: the three
layouts differ in size modulo 132.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from instrec.rerank.colour import SIGNATURE_SIZE

DESCRIPTOR_DIM = 128
_KEYPOINT_BYTES = 4 + DESCRIPTOR_DIM
_COLOUR_BYTES = 2 * SIGNATURE_SIZE  # float16
_LEGACY_HUE_BYTES = 4 + 48 * 48  # a former check's hue map, written by earlier versions: skipped
_HEADER = np.dtype([("n", "<u4"), ("scale", "<f4")])
_XY_UNIT = 16.0  # coordinates stored in 1/16 pixel as uint16: up to 4095 px
MAX_COORDINATE = 65535 / _XY_UNIT


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one image, strongest first (a cut-out's extra keypoints over black after them).

    ``xy`` are pixel coordinates in the *working frame*: the image downscaled so its long side is at
    most ``max_side`` (``scale`` = original / working; 1.0 when not resized), so RANSAC thresholds
    mean the same thing whatever the upload resolution.
    """

    xy: np.ndarray  # float32 (n, 2)
    descriptors: np.ndarray  # uint8 (n, 128), raw SIFT
    scale: float = 1.0
    colour: np.ndarray | None = None  # float32 (72,) colour signature of the whole image, if extracted

    def __post_init__(self) -> None:
        if self.xy.shape != (len(self.descriptors), 2) or self.descriptors.shape[1:] != (DESCRIPTOR_DIM,):
            raise ValueError(f"xy {self.xy.shape} and descriptors {self.descriptors.shape} disagree")
        if self.colour is not None and self.colour.shape != (SIGNATURE_SIZE,):
            raise ValueError(f"colour signature of shape {self.colour.shape}, not ({SIGNATURE_SIZE},)")

    def __len__(self) -> int:
        return len(self.descriptors)

    def rootsift(self) -> np.ndarray:
        """float32 (n, 128), unit L2 norm."""
        return rootsift(self.descriptors)

    @classmethod
    def empty(cls) -> "LocalFeatures":
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_DIM), np.uint8))

    def pack(self) -> bytes:
        """Compact bytes for the catalog; :meth:`unpack` reverses it to within 1/32 pixel (colour: float16)."""
        header = np.array([(len(self), self.scale)], dtype=_HEADER)
        xy = np.rint(np.clip(self.xy, 0, MAX_COORDINATE) * _XY_UNIT).astype("<u2")
        colour = b"" if self.colour is None else self.colour.astype("<f2").tobytes()
        return header.tobytes() + xy.tobytes() + np.ascontiguousarray(self.descriptors, np.uint8).tobytes() + colour

    @classmethod
    def unpack(cls, data: bytes) -> "LocalFeatures":
        header = np.frombuffer(data, _HEADER, 1)[0]
        n, offset = int(header["n"]), _HEADER.itemsize
        keypoints_end = offset + n * _KEYPOINT_BYTES
        colour_end = keypoints_end + _COLOUR_BYTES
        if len(data) not in (keypoints_end, colour_end, colour_end + _LEGACY_HUE_BYTES):
            raise ValueError(f"packed local features of {len(data)} bytes do not hold {n} keypoints")
        xy = np.frombuffer(data, "<u2", 2 * n, offset).reshape(n, 2).astype(np.float32) / _XY_UNIT
        desc = np.frombuffer(data, np.uint8, n * DESCRIPTOR_DIM, offset + 4 * n).reshape(n, DESCRIPTOR_DIM)
        colour = None
        if len(data) > keypoints_end:
            colour = np.frombuffer(data, "<f2", SIGNATURE_SIZE, keypoints_end).astype(np.float32)
        return cls(xy, desc, float(header["scale"]), colour)

    @staticmethod
    def packed_complete(size: int) -> bool:
        """Whether packed features of ``size`` bytes carry the colour signature (the size alone tells:
        without it the keypoints fill whole 132-byte records after the header)."""
        return (size - _HEADER.itemsize) % _KEYPOINT_BYTES != 0


def rootsift(descriptors: np.ndarray) -> np.ndarray:
    d = descriptors.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(d, out=d)


def extract_local_features(
    image: Image.Image,
    max_keypoints: int = 1200,
    max_side: int = 640,
    contrast_threshold: float = 0.02,
    alpha: Image.Image | None = None,
) -> LocalFeatures:
    """SIFT keypoints + descriptors of a PIL image, at most ``max_keypoints``, strongest first.

    ``alpha`` (mode "L", the size of ``image``) marks a cut-out composited over white. Its edge then
    has the opposite contrast against a dark background, and SIFT descriptors follow the contrast's
    direction, so the keypoints of the cut-out over black that the white composite lacks are added
    after the white composite's own, as far as ``max_keypoints`` allows.

    Deterministic: same pixels and arguments give the same arrays (ties in response are broken by
    position, not by OpenCV's internal order).
    """
    features = _sift(image, max_keypoints, max_side, contrast_threshold)
    if alpha is None or len(features) >= max_keypoints:
        return features
    white = np.asarray(image.convert("RGB"), np.float32)
    clear = 255.0 * (1.0 - np.asarray(alpha, np.float32)[..., None] / 255.0)
    on_black = Image.fromarray(np.clip(np.rint(white - clear), 0, 255).astype(np.uint8))  # over white: a*c + (1-a)*255
    extra = _sift(on_black, max_keypoints, max_side, contrast_threshold)
    new = ~_same_keypoints(extra, features)
    room = max_keypoints - len(features)
    return LocalFeatures(
        np.vstack([features.xy, extra.xy[new][:room]]),
        np.vstack([features.descriptors, extra.descriptors[new][:room]]),
        features.scale,
    )


# A keypoint of the black composite is one the white composite has already when one of those lies
# this close (working-frame pixels) with this similar a descriptor: the object's interior, where
# the background does not reach.
_SAME_PLACE_PX = 1.5
_SAME_DESCRIPTOR = 0.9  # RootSIFT cosine


def _same_keypoints(extra: LocalFeatures, kept: LocalFeatures) -> np.ndarray:
    """Per keypoint of ``extra``, whether ``kept`` has it already."""
    if not len(extra) or not len(kept):
        return np.zeros(len(extra), bool)
    near = np.linalg.norm(extra.xy[:, None] - kept.xy[None], axis=2) < _SAME_PLACE_PX
    alike = extra.rootsift() @ kept.rootsift().T > _SAME_DESCRIPTOR
    return (near & alike).any(axis=1)


def _sift(image: Image.Image, max_keypoints: int, max_side: int, contrast_threshold: float) -> LocalFeatures:
    gray = np.asarray(image.convert("L"))
    h, w = gray.shape
    scale = 1.0
    if max(h, w) > max_side:
        scale = max(h, w) / max_side
        size = (max(1, round(w / scale)), max(1, round(h / scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if min(gray.shape) < 16:
        return LocalFeatures.empty()
    sift = cv2.SIFT.create(nfeatures=max_keypoints, contrastThreshold=contrast_threshold)
    keypoints, desc = sift.detectAndCompute(np.ascontiguousarray(gray), None)
    if desc is None or len(keypoints) == 0:
        return LocalFeatures.empty()
    xy = np.array([kp.pt for kp in keypoints], np.float32)
    response = np.array([kp.response for kp in keypoints], np.float32)
    order = np.lexsort((xy[:, 0], xy[:, 1], -response))[:max_keypoints]
    descriptors = np.clip(np.rint(desc[order]), 0, 255).astype(np.uint8)
    return LocalFeatures(np.ascontiguousarray(xy[order]), descriptors, float(scale))
