"""Knobs of the local-feature stage (shortlist + geometric verification), in one frozen dataclass.

Meant to be embedded as a section of :class:`instrec.config.Config`; every field is a plain scalar so
the generic ``section.key=value`` override machinery can set it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instrec.errors import ConfigError


@dataclass(frozen=True)
class RerankConfig:
    # --- keypoints (what is stored per gallery image; changing these needs a re-extraction) ---
    max_keypoints: int = 800  # strongest SIFT keypoints kept: <= 132 B each on disk, 12 B in RAM
    max_side: int = 640  # long side is downscaled to this before detection (never upscaled)
    contrast_threshold: float = 0.02  # SIFT's; lower than OpenCV's 0.04 finds more points on small images
    # --- sub-linear local index (inverted file over visual words + Hamming embedding) ---
    vocabulary: str = "generic"  # "generic" (shipped, trained on scikit-image samples) or a .npz path
    multi_assign: int = 3  # visual words probed per query descriptor
    hamming_threshold: int = 24  # of 64 bits: a posting farther than this is no match
    hamming_sigma: float = 16.0  # match weight exp(-(h / sigma)^2): soft Hamming selectivity
    # --- verification ---
    shortlist: int = 20  # candidates verified per query
    ratio: float = 0.8  # Lowe ratio; the 2nd neighbour is taken from a *different* candidate image
    ransac_model: Literal["homography", "fundamental", "affine"] = "homography"
    ransac_threshold: float = 6.0  # reprojection error in pixels of the max_side-scaled image
    ransac_iters: int = 1000
    min_inliers: int = 6  # fewer inliers than this count as no geometric evidence at all
    # --- fusion into one score per candidate ---
    weight_global: float = 0.4
    weight_local: float = 0.1
    weight_inliers: float = 0.5
    inlier_saturation: int = 40  # inliers at which the geometric evidence reaches 0.95
    seed: int = 0  # RANSAC and training randomness: same inputs, same answers

    def __post_init__(self) -> None:
        if self.max_keypoints < 8:
            raise ConfigError("rerank.max_keypoints must be >= 8")
        if self.max_side < 32:
            raise ConfigError("rerank.max_side must be >= 32")
        if not 0 <= self.hamming_threshold <= 64:
            raise ConfigError("rerank.hamming_threshold must be in [0, 64]")
        if self.multi_assign < 1:
            raise ConfigError("rerank.multi_assign must be >= 1")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError("rerank.ratio must be in (0, 1]")
        if self.shortlist < 1:
            raise ConfigError("rerank.shortlist must be >= 1")
        if min(self.weight_global, self.weight_local, self.weight_inliers) < 0:
            raise ConfigError("rerank.weight_* must be >= 0")
        if self.inlier_saturation <= self.min_inliers:
            raise ConfigError("rerank.inlier_saturation must be > rerank.min_inliers")
        if self.max_side > 4095:
            raise ConfigError("rerank.max_side must be <= 4095 (stored coordinates are uint16 / 16)")

    def feature_key(self) -> dict[str, float | int]:
        """What decides the stored features: a store built with another key must be re-extracted."""
        return {
            "max_keypoints": self.max_keypoints,
            "max_side": self.max_side,
            "contrast_threshold": self.contrast_threshold,
        }
