"""All settings in one typed place.

Defaults live here and nowhere else: the CLI, the REST service and the Python API all build a
:class:`Config` and override it the same way, from ``section.key=value`` strings (CLI ``--set``) or
``INSTREC_SECTION__KEY`` environment variables. Unknown keys and ill-typed values are refused with
a message, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from instrec.errors import ConfigError

DEFAULT_HOME = "./instrec-data"
ENV_PREFIX = "INSTREC_"


@dataclass(frozen=True)
class DescriptorConfig:
    """Everything that decides what vector an image gets. Two libraries are comparable iff equal.

    Stored in the catalog; opening a library with a different descriptor is refused (or the gallery
    is re-embedded on request), never silently mixed.
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None  # local weights file for backbones that do not ship their own
    max_side: int = 224  # the image's long side is resized to this; aspect ratio is kept...
    size_multiple: int = 32  # ...then each side rounded to a multiple of this (Lite needs 32: fast ONNX)
    gem_p: float = 3.0  # generalised-mean pooling exponent (1 = average, large = max)
    scales: tuple[float, ...] = (1.0,)  # multi-scale: relative to max_side, descriptors are summed
    flip: bool = False  # also embed the mirror image and sum (test-time augmentation)
    # PCA-whitening file fitted on unlabelled photos (`instrec whiten`, embedding/whitening.py): applied
    # to every vector, it also sets the dimension. None = raw backbone descriptors.
    whitening: str | None = None

    def key(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class RuntimeConfig:
    """How vectors are computed; does not change them (ONNX and torch agree to ~1e-5)."""

    engine: Literal["onnx", "torch"] = "onnx"
    batch_size: int = 16
    threads: int = 0  # 0 = all cores


@dataclass(frozen=True)
class IndexConfig:
    """Nearest-neighbour index over the gallery vectors."""

    backend: Literal["auto", "flat", "ivf"] = "auto"
    # 'auto' switches from exact to approximate search past this many vectors (bench_index.py).
    auto_threshold: int = 2_000
    nprobe: int = 0  # IVF: cells visited per query; 0 = 7/16 of the cells (see index/ivf.py)
    code_dims: int = 256  # IVF: cells and PQ codes use the top this-many principal directions (0 = all)
    refine_factor: int = 2  # IVF: k * this candidates from the PQ codes are re-scored exactly


@dataclass(frozen=True)
class DecisionConfig:
    """How image matches become instance scores, and when the answer is 'unknown'."""

    aggregation: Literal["max", "prototype"] = "max"
    top_k: int = 5
    shortlist: int = 100  # image neighbours fetched per query before grouping by instance
    threshold: float | None = None  # None: use the calibrated threshold stored in the library
    target_far: float = 0.01  # calibrate: false-accept rate the threshold aims for
    # The service re-calibrates on a side thread once the gallery has changed materially (and at
    # start-up if it has since the last calibration); the CLI and the Python API never do by themselves.
    auto_calibrate: bool = True
    # An instance's score is lowered by this x the mean score of the `competitors` best other instances
    # (decision.against_competitors): an unknown object resembles several enrolled ones alike, a known
    # one stands out. Against the runner-up alone (competitors=1), near-identical twins become "unknown".
    competitor_weight: float = 0.75
    competitors: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.competitor_weight <= 1:
            raise ConfigError("decision.competitor_weight must be in [0, 1]")
        if self.competitors < 1:
            raise ConfigError("decision.competitors must be at least 1")


@dataclass(frozen=True)
class RerankConfig:
    """Second stage: local-feature shortlist + geometric verification of the global shortlist.

    Every field is a plain scalar so ``rerank.key=value`` overrides reach it like any other.
    """

    enabled: bool = True  # extract local features at enrolment and verify at recognition
    # --- keypoints (what is stored per gallery image; changing these needs a re-extraction) ---
    # Strongest SIFT keypoints kept per gallery image: <= 132 B each on disk, 12 B in RAM. A catalogue
    # label downscaled to max_side holds more than 800; the extra ones separate same-brand twins.
    max_keypoints: int = 1200
    query_keypoints: int = 1500  # a query is not stored: more keypoints find small objects in clutter
    max_side: int = 640  # long side is downscaled to this before detection (never upscaled)
    contrast_threshold: float = 0.02  # SIFT's; lower than OpenCV's 0.04 finds more points on small images
    # --- sub-linear local index (inverted file over visual words + Hamming embedding) ---
    vocabulary: str = "generic"  # "generic" (shipped, trained on scikit-image samples) or a .npz path
    multi_assign: int = 3  # visual words probed per query descriptor
    # Of 64 bits: a posting farther than this is no match. Tighter than Jegou et al.'s 24: with a small
    # generic vocabulary, loose matches let labels sharing one template outvote the right one.
    hamming_threshold: int = 16
    hamming_sigma: float = 16.0  # match weight exp(-(h / sigma)^2): soft Hamming selectivity
    # --- verification ---
    shortlist: int = 10  # candidates verified per query by global similarity...
    local_shortlist: int = 20  # ...plus these by local-index score (objects small in a cluttered photo)
    ratio: float = 0.8  # Lowe ratio; the 2nd neighbour is taken from a *different* candidate image
    ransac_model: Literal["homography", "fundamental", "affine"] = "homography"
    ransac_threshold: float = 10.0  # reprojection error in pixels of the max_side-scaled image
    ransac_iters: int = 1000
    # Descriptor similarities of the ratio test: "auto" = bfloat16 on CPUs with AMX (faster; same
    # accuracy on every set of benchmarks/bench_accuracy.py), else float32.
    match_precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # --- fusion into one score per candidate (weights chosen on ukbench-dev, COIL-100 and the
    # product proxy: see benchmarks/bench_accuracy.py) ---
    weight_global: float = 1.0
    weight_inliers: float = 1.0
    # Colour similarity of the query photo and the candidate (rerank/colour.py): sees
    # what SIFT and the global descriptor are blind to (same pack, other flavour colour).
    weight_colour: float = 0.25
    # A homography fits any 4 matches exactly, so chance matches often reach 4-6 inliers; inliers up
    # to inlier_floor count as none (3, not 4: measured on ukbench-dev, COIL-100 and the proxy).
    inlier_floor: int = 3
    inlier_midpoint: float = 6.0  # inliers above the floor giving geometric evidence ~0.5
    inlier_width: float = 5.0  # logistic width: evidence ~0.27 at midpoint - 5, ~0.73 at + 5
    seed: int = 0  # RANSAC and training randomness: same inputs, same answers

    def __post_init__(self) -> None:
        if min(self.max_keypoints, self.query_keypoints) < 8:
            raise ConfigError("rerank.max_keypoints and rerank.query_keypoints must be >= 8")
        if self.max_side < 32:
            raise ConfigError("rerank.max_side must be >= 32")
        if not 0 <= self.hamming_threshold <= 64:
            raise ConfigError("rerank.hamming_threshold must be in [0, 64]")
        if self.multi_assign < 1:
            raise ConfigError("rerank.multi_assign must be >= 1")
        if not 0.0 < self.ratio <= 1.0:
            raise ConfigError("rerank.ratio must be in (0, 1]")
        if self.shortlist < 1 or self.local_shortlist < 0:
            raise ConfigError("rerank.shortlist must be >= 1 and rerank.local_shortlist >= 0")
        if min(self.weight_global, self.weight_inliers, self.weight_colour) < 0:
            raise ConfigError("rerank.weight_* must be >= 0")
        if self.inlier_floor < 0:
            raise ConfigError("rerank.inlier_floor must be >= 0")
        if self.inlier_width <= 0:
            raise ConfigError("rerank.inlier_width must be > 0")
        if self.max_side > 4095:
            raise ConfigError("rerank.max_side must be <= 4095 (stored coordinates are uint16 / 16)")


@dataclass(frozen=True)
class LimitsConfig:
    """Input limits that protect the process from hostile or accidental huge inputs."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000  # refused before decoding: defeats decompression bombs
    min_side: int = 16
    max_images_per_instance: int = 64


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    auth: bool = True  # off only when explicitly disabled for local use
    api_keys: tuple[str, ...] = ()  # read-only keys
    admin_keys: tuple[str, ...] = ()  # read-write keys
    max_upload_bytes: int = 20 * 1024 * 1024
    inference_slots: int = 0  # model runs at once per process; 0 = the cores, shared among the workers

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"service.workers must be >= 1, got {self.workers}")
        if self.inference_slots < 0:
            raise ConfigError(f"service.inference_slots must be >= 0 (0 = one per core), got {self.inference_slots}")


@dataclass(frozen=True)
class Config:
    home: Path = Path(DEFAULT_HOME)
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)

    def scoring_key(self) -> str:
        """Digest of every setting that changes a score: a threshold calibrated under other values means
        nothing, so calibrations are stored per key. Derived, not listed, so a new setting is covered
        the day it is added; only the settings known not to change scores are left out."""
        payload = {name: {k: v for k, v in dataclasses.asdict(getattr(self, name)).items()
                          if k not in _NOT_SCORING.get(name, ())} for name in _SCORING_SECTIONS}
        return short_digest(payload)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """Return a copy with ``{"section.key": value}`` applied (values may be strings)."""
        config = self
        for dotted, value in overrides.items():
            config = _apply(config, dotted, value)
        return config

    @classmethod
    def load(
        cls,
        home: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> "Config":
        """Defaults, then ``INSTREC_*`` environment, then explicit overrides (highest wins)."""
        environ = os.environ if environ is None else environ
        config = cls().with_overrides(env_overrides(environ))
        if home is not None:
            config = dataclasses.replace(config, home=Path(home))
        return config.with_overrides(overrides or {})


# Sections whose settings decide scores, and the settings in them that do not (which answers are
# shown, where the line is drawn, not what a candidate scores). runtime (ONNX and torch agree),
# index (approximate search finds the same neighbours within its recall) and limits do not either.
_SCORING_SECTIONS = ("descriptor", "decision", "rerank")
_NOT_SCORING = {"decision": ("top_k", "threshold", "target_far", "auto_calibrate")}


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """``INSTREC_HOME`` -> ``home``; ``INSTREC_INDEX__BACKEND`` -> ``index.backend``."""
    out: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            out[name[len(ENV_PREFIX):].lower().replace("__", ".")] = value
    return out


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``["index.backend=flat", ...]`` (the CLI's ``--set``) -> mapping."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def short_digest(payload: Any) -> str:
    """Short stable id of JSON-able settings."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def descriptor_digest(descriptor: DescriptorConfig, weights_digest: str) -> str:
    """Short stable id of a descriptor: what the catalog records next to every vector."""
    return short_digest({"descriptor": descriptor.key(), "weights": weights_digest})


def _apply(obj: Any, dotted: str, value: Any) -> Any:
    head, _, rest = dotted.partition(".")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if head not in fields:
        where = type(obj).__name__
        raise ConfigError(f"unknown setting {dotted!r} in {where}; known: {', '.join(sorted(fields))}")
    current = getattr(obj, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"setting {head!r} has no sub-settings (got {dotted!r})")
        return dataclasses.replace(obj, **{head: _apply(current, rest, value)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"{dotted!r} is a section; set one of its keys, e.g. {dotted}.<key>=...")
    hint = typing.get_type_hints(type(obj))[head]
    return dataclasses.replace(obj, **{head: _coerce(value, hint, dotted)})


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [i for i in items if not (isinstance(i, str) and not i.strip())]
        return tuple(_coerce(i.strip() if isinstance(i, str) else i, args[0], name) for i in items)
    try:
        if hint is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is Path:
            return Path(value)
        if hint in (int, float, str):
            return hint(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} expects {getattr(hint, '__name__', hint)}; got {value!r}") from None
    raise ConfigError(f"cannot set {name} of type {hint}")
