"""What the façade returns: recognitions with their matches, and reports of enrolment."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from instrec.catalog import ImageRecord, Instance
from instrec.errors import ImageError


@dataclass(frozen=True)
class Box:
    """Where in the query photo something was found: pixels of the photo as given (after EXIF rotation)."""

    left: int
    top: int
    right: int
    bottom: int

    def scaled(self, factor: float) -> "Box":
        return Box(*(round(v * factor) for v in (self.left, self.top, self.right, self.bottom)))

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    @classmethod
    def around(cls, corners: tuple[float, float, float, float], scale: tuple[float, float], size: tuple[int, int]) -> "Box":
        """``corners`` of a resized copy, times its (x, y) ``scale``, in the ``size`` (width, height) photo:
        rounded outwards, so the box still holds every point it was drawn around."""
        left, top, right, bottom = corners
        (sx, sy), (width, height) = scale, size
        return cls(
            max(0, math.floor(left * sx)),
            max(0, math.floor(top * sy)),
            min(width, math.ceil(right * sx)),
            min(height, math.ceil(bottom * sy)),
        )


@dataclass(frozen=True)
class Match:
    instance_id: str
    label: str
    # cosine similarity of the best evidence (the fused score when re-ranking is on), less
    # tuning.decision.competitor_weight x the mean of the tuning.decision.competitors best other instances' scores
    score: float
    confidence: float  # calibrated probability-like score in [0, 1]
    metadata: dict[str, Any]
    image_id: int  # the gallery image that matched best
    inliers: int | None = None  # geometrically verified keypoint matches (re-ranking on)
    box: Box | None = None  # where those matches lie in the query photo (more than chance reaches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "label": self.label,
            "score": round(self.score, 6),
            "confidence": round(self.confidence, 6),
            "metadata": self.metadata,
            "image_id": self.image_id,
            "inliers": self.inliers,
            "box": None if self.box is None else self.box.to_dict(),
        }


@dataclass(frozen=True)
class ImageHit:
    image_id: int
    instance_id: str
    score: float


@dataclass(frozen=True)
class Recognition:
    unknown: bool
    matches: list[Match]  # top-k, best first; shown even when unknown (the nearest candidates)
    threshold: float
    timing_ms: dict[str, float]
    images: list[ImageHit] = field(default_factory=list)  # gallery images ranked (with_images=True)
    box: Box | None = None  # the face recognised (faces profile; None: the whole photo)
    no_face: bool = False  # a faces library's answer to a photo that shows no face (unknown too)

    @property
    def best(self) -> Match | None:
        return None if self.unknown or not self.matches else self.matches[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "unknown": self.unknown,
            "matches": [m.to_dict() for m in self.matches],
            "threshold": self.threshold,
            "timing_ms": {k: round(v, 3) for k, v in self.timing_ms.items()},
            "box": None if self.box is None else self.box.to_dict(),
            "no_face": self.no_face,
        }


@dataclass
class EnrollResult:
    instance: Instance
    added: list[ImageRecord] = field(default_factory=list)
    duplicates: list[ImageRecord] = field(default_factory=list)
    errors: list[ImageError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "added": [i.to_dict() for i in self.added],
            "duplicates": [i.to_dict() for i in self.duplicates],
            "errors": [{"source": e.source, "error": e.reason} for e in self.errors],
        }


@dataclass
class FolderReport:
    instances: int = 0
    images_added: int = 0
    duplicates: int = 0
    errors: list[ImageError] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "images_added": self.images_added,
            "duplicates": self.duplicates,
            "errors": [{"source": e.source, "error": e.reason} for e in self.errors],
            "seconds": self.seconds,
        }
