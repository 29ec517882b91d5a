"""Scoring profiles: the tuned constants of every stage that decides a score, grouped by stage.

A user picks a profile by name (``profile=objects``); the constants are not user settings. They
were chosen on the real sets under ``benchmarks/`` and change together or not at all, the way
hloc ships named configurations. Benchmarks and experts may still override one constant
(``tuning.rerank.ratio=0.7``); every constant is part of :meth:`instrec.config.Config.scoring_key`,
so a threshold calibrated under other constants is never reused.

A profile also picks the pipeline: one with a ``face`` section (the ``faces`` profile) describes
the largest face of a photo with dlib (:mod:`instrec.embedding.faces`) instead of the backbone,
and extracts no local features (SIFT on a face matches skin texture, not identity). A new kind of
object registers a profile of its own with :func:`register_profile`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DescriptorTuning(_Frozen):
    """How an image is shown to the backbone (part of the descriptor's identity: stored vectors
    made under other values are not comparable)."""

    max_side: int = Field(224, ge=32)  # the image's long side is resized to this; aspect ratio is kept...
    size_multiple: int = Field(32, ge=1)  # ...then each side rounded to a multiple of this (Lite needs 32)
    gem_p: float = Field(3.0, gt=0)  # generalised-mean pooling exponent (1 = average, large = max)


class StrangerTail(_Frozen):
    """Where the cosines of pairs of different people lie, near the top (:mod:`instrec.decision.tail`):
    their distance ``sqrt(2 - 2 cos)`` is below ``r`` for a share ``(r / scale) ** dim`` of pairs."""

    scale: float = Field(gt=0)
    dim: float = Field(gt=0)


class DecisionTuning(_Frozen):
    """How image matches become instance scores."""

    shortlist: int = Field(100, ge=1)  # image neighbours fetched per query before grouping by instance
    # An instance's score is lowered by this x the mean score of the `competitors` best other instances
    # (decision.against_competitors): an unknown object resembles several enrolled ones alike, a known
    # one stands out. Against the runner-up alone (competitors=1), near-identical twins become "unknown".
    competitor_weight: float = Field(0.75, ge=0, le=1)
    competitors: int = Field(5, ge=1)
    # For a profile whose scores are plain cosines the shipped prior (fitted on the objects pipeline)
    # does not describe: where strangers' cosines lie, giving the threshold until a gallery is
    # calibrated and the lowest a calibration sets, both rising with the gallery's vectors
    # (decision.tail): a stranger's best score over many vectors is at least its score against a
    # few, which a gallery's few shipped stranger photos cannot tell. None: decision.calibration's
    # guess for lowered scores, and no floor.
    stranger_tail: StrangerTail | None = None


class RerankTuning(_Frozen):
    """Second stage: local-feature shortlist + geometric verification of the global shortlist."""

    # --- keypoints (what is stored per gallery image; changing these needs a re-extraction) ---
    # Strongest SIFT keypoints kept per gallery image: <= 132 B each on disk, 12 B in RAM. A catalogue
    # label downscaled to max_side holds more than 800; the extra ones separate same-brand twins.
    max_keypoints: int = Field(1200, ge=8)
    query_keypoints: int = Field(1500, ge=8)  # a query is not stored: more keypoints find small objects in clutter
    max_side: int = Field(640, ge=32, le=4095)  # long side is downscaled to this (never upscaled); uint16/16 coordinates
    contrast_threshold: float = 0.02  # SIFT's; lower than OpenCV's 0.04 finds more points on small images
    # --- sub-linear local index (inverted file over visual words + Hamming embedding) ---
    multi_assign: int = Field(3, ge=1)  # visual words probed per query descriptor
    # Of 64 bits: a posting farther than this is no match. Tighter than Jegou et al.'s 24: with a small
    # generic vocabulary, loose matches let labels sharing one template outvote the right one.
    hamming_threshold: int = Field(16, ge=0, le=64)
    hamming_sigma: float = Field(16.0, gt=0)  # match weight exp(-(h / sigma)^2): soft Hamming selectivity
    # Postings one query visits at most (rarest words first). With a few thousand words every list grows
    # with the gallery, so without a cap a query over 100,000 images visits nearly all of them.
    local_postings: int = Field(1_000_000, ge=1)
    # --- verification ---
    shortlist: int = Field(10, ge=1)  # candidates verified per query by global similarity...
    local_shortlist: int = Field(20, ge=0)  # ...plus these by local-index score (objects small in a cluttered photo)
    ratio: float = Field(0.8, gt=0, le=1)  # Lowe ratio; the 2nd neighbour is taken from a *different* candidate image
    ransac_model: Literal["homography", "fundamental", "affine"] = "homography"
    ransac_threshold: float = Field(10.0, gt=0)  # reprojection error in pixels of the max_side-scaled image
    ransac_iters: int = Field(1000, ge=1)
    # Descriptor similarities of the ratio test: "auto" = bfloat16 on CPUs with AMX (faster; same
    # accuracy on every set of benchmarks/bench_accuracy.py), else float32; `instrec recognize` takes
    # float32 (instrec.cli.common.opened: importing torch would cost it more).
    match_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # --- fusion into one score per candidate (rerank/fuse.py) ---
    weight_global: float = Field(1.0, ge=0)
    weight_inliers: float = Field(1.0, ge=0)
    # Colour similarity of the query photo and the candidate (rerank/colour.py): sees
    # what SIFT and the global descriptor are blind to (same pack, other flavour colour).
    weight_colour: float = Field(0.25, ge=0)
    # A homography fits any 4 matches exactly, so chance matches often reach 4-6 inliers; inliers up
    # to inlier_floor count as none.
    inlier_floor: int = Field(3, ge=0)
    inlier_midpoint: float = 6.0  # inliers above the floor giving geometric evidence ~0.5
    inlier_width: float = Field(5.0, gt=0)  # logistic width: evidence ~0.27 at midpoint - 5, ~0.73 at + 5
    seed: int = 0  # RANSAC randomness: same inputs, same answers


class FaceTuning(_Frozen):
    """How a photo becomes a face descriptor (part of the descriptor's identity, like DescriptorTuning)."""

    # "hog": fast on a CPU; "cnn": dlib's MMOD detector, finds turned and small faces, far slower;
    # "hog+cnn": HOG, and the CNN on the photos where HOG finds no face (only those pay for it): the
    # faces HOG misses in tight crops and harsh light are most of its errors (benchmarks/bench_faces.py).
    detector: Literal["hog", "cnn", "hog+cnn"] = "hog+cnn"
    upsample: int = Field(1, ge=0, le=3)  # the detector looks at the photo enlarged 2^upsample times: finds smaller faces
    max_side: int = Field(1024, ge=64)  # the photo's long side is downscaled to this (never upscaled) first
    padding: float = Field(0.25, ge=0, le=1)  # margin around the aligned face, as a share of its size (dlib's default)

    def descriptor_key(self) -> dict[str, object]:
        """What decides a face vector, stored with a library's vectors like a backbone's settings."""
        return {"embedder": "dlib-face-resnet-v1", **self.model_dump()}


class Tuning(_Frozen):
    descriptor: DescriptorTuning = DescriptorTuning()
    decision: DecisionTuning = DecisionTuning()
    rerank: RerankTuning = RerankTuning()
    face: FaceTuning | None = None  # set: faces are embedded instead of whole photos (see the module's doc)


DEFAULT_PROFILE = "objects"
FACES_PROFILE = "faces"
_PROFILES: dict[str, Tuning] = {
    DEFAULT_PROFILE: Tuning(),
    # The score is the plain cosine of two faces: lowering it by the field of other enrolled faces
    # separates strangers less on att-faces (benchmarks/bench_faces.py). The strangers' tail is
    # fitted on att-faces' pairs of different people (benchmarks/fit_face_tail.py).
    FACES_PROFILE: Tuning(
        face=FaceTuning(),
        decision=DecisionTuning(competitor_weight=0.0, stranger_tail=StrangerTail(scale=0.514, dim=20.33)),
    ),
}


def register_profile(name: str, tuning: Tuning) -> None:
    """Make ``profile=name`` select ``tuning``; a name is registered once."""
    if name in _PROFILES:
        raise ValueError(f"profile {name!r} is already registered")
    _PROFILES[name] = tuning


def profile_tuning(name: str) -> Tuning:
    if name not in _PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(sorted(_PROFILES))}")
    return _PROFILES[name]


def profile_names() -> list[str]:
    return sorted(_PROFILES)
