"""What the recognition routes answer, as the OpenAPI schema documents it (clients are generated from it)."""

from __future__ import annotations

from pydantic import BaseModel, Field, JsonValue

from instrec.service.errors import Error


class BoxOut(BaseModel):
    """Pixels of the query photo as sent (after its EXIF rotation); right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int


class ImageRef(BaseModel):
    id: int
    thumbnail_url: str


class MatchOut(BaseModel):
    instance_id: str
    label: str
    score: float
    confidence: float = Field(description="Calibrated probability-like score in [0, 1].")
    metadata: dict[str, JsonValue]
    image_id: int = Field(description="The enrolled image that matched best.")
    inliers: int | None = Field(description="Geometrically verified keypoint matches (null: not verified).")
    box: BoxOut | None = Field(
        description="Where the verified keypoints lie in the query photo; null when too few to say (chance level)."
    )
    thumbnail_url: str | None
    images: list[ImageRef]


class RecognitionOut(BaseModel):
    unknown: bool
    matches: list[MatchOut] = Field(description="Best first; given even when unknown (the nearest candidates).")
    best: MatchOut | None = Field(description="The first match, unless the answer is unknown.")
    threshold: float
    timing_ms: dict[str, float]
    filename: str | None = None
    box: BoxOut | None = Field(None, description="Faces library: the face this answer is about.")
    no_face: bool = Field(False, description="Faces library: no face found in the photo (then also unknown).")
    faces: list[RecognitionOut] | None = Field(
        None, description="Faces library: every face found, largest first (the answer above is the first)."
    )


class BatchRecognition(RecognitionOut):
    filename: str


class BatchError(BaseModel):
    filename: str
    error: Error


class BatchOut(BaseModel):
    results: list[BatchRecognition | BatchError] = Field(description="One per photo sent, in order.")
    timing_ms: dict[str, float]
