"""The settings a user touches, in one typed place.

The CLI, the REST service and the Python API all build a :class:`Config` the same way: defaults,
then ``INSTREC_SECTION__KEY`` environment variables, then ``section.key=value`` overrides (CLI
``--set``), highest last. Unknown keys and ill-typed values are refused with a message that names
the setting, never silently ignored. The tuned constants of the scoring stages are not here: they
belong to a named profile (:mod:`instrec.profiles`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from instrec.errors import ConfigError
from instrec.profiles import DEFAULT_PROFILE, FACES_PROFILE, DescriptorTuning, Tuning, profile_tuning

DEFAULT_HOME = "./instrec-data"
DEFAULT_COLLECTION = "default"  # the home itself: what every library was before collections existed
# A collection's name is a folder's name under <home>/collections/: one safe path segment, lower case so
# that two names never meet in one folder on a case-insensitive file system, never "." or "..".
COLLECTION_PATTERN = r"^[a-z0-9_-][a-z0-9._-]{0,63}$"
ENV_PREFIX = "INSTREC_"
_NONE_WORDS = ("", "none", "null")


def _comma_list(value: Any) -> Any:
    return tuple(item.strip() for item in value.split(",") if item.strip()) if isinstance(value, str) else value


def _none_word(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in _NONE_WORDS else value


def _json_object(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # '{"nlist": 1024}' from --set


Keys = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]  # "a,b" from the environment or --set
OrNone = BeforeValidator(_none_word)  # "none" from --set


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DescriptorConfig(_Section):
    """Which network makes the global descriptor. Stored in the catalog; opening a library with another
    descriptor is refused (or the gallery is re-embedded on request), never silently mixed."""

    backbone: str = "efficientnet_lite0"
    weights: Annotated[str | None, OrNone] = None  # local weights file for backbones that do not ship their own
    # PCA-whitening file fitted on unlabelled photos (`instrec whiten`, embedding/whitening.py): applied
    # to every vector, it also sets the dimension. None = raw backbone descriptors.
    whitening: Annotated[str | None, OrNone] = None
    # "int8": run the INT8 graph `instrec export --int8` made for this descriptor, and kept only where it
    # passed its quality gate (training/quantize.py); refused when there is none. Its vectors are close
    # to fp32's but not equal, so they form another descriptor: a library keeps to one precision.
    precision: Literal["fp32", "int8"] = "fp32"

    def identity(self) -> dict[str, Any]:
        """The settings as they identify the descriptor: fp32 is left out, so the ids of descriptors
        (and the scoring keys, and the prior) from before the setting existed stay as they were."""
        return self.model_dump(exclude={"precision"} if self.precision == "fp32" else None)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RuntimeConfig(_Section):
    """How vectors are computed; does not change them (ONNX and torch agree to ~1e-5)."""

    engine: Literal["onnx", "torch"] = "onnx"
    batch_size: int = Field(16, ge=1)
    threads: int = Field(0, ge=0)  # 0 = all cores
    # "auto" runs on a GPU where the engine has CUDA (onnx: the onnxruntime-gpu package; torch: a CUDA
    # build of torch), else the CPU; `instrec train`'s fine-tuning (partial, full) runs on torch's.
    device: Literal["auto", "cpu", "cuda"] = "auto"


class IndexConfig(_Section):
    """Nearest-neighbour index over the gallery vectors."""

    backend: Literal["auto", "flat", "ivf", "milvus"] = "auto"
    # 'auto' switches from exact to approximate search past this many vectors (bench_index.py).
    auto_threshold: int = Field(2_000, ge=1)
    nprobe: int = Field(0, ge=0)  # IVF: cells visited per query; 0 = 5/16 of the cells (see index/ivf.py)
    # backend=milvus (index/milvus.py): a Milvus Lite file, or http(s)://host:19530 for a Milvus server;
    # None = <home>/index/milvus.db. The index type and its build / search params go to Milvus as given.
    uri: Annotated[str | None, OrNone] = None
    milvus_collection: str = Field("instrec", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    milvus_index: str = "FLAT"
    milvus_params: Annotated[dict[str, Any], BeforeValidator(_json_object)] = {}
    milvus_search_params: Annotated[dict[str, Any], BeforeValidator(_json_object)] = {}


class CatalogConfig(_Section):
    """Where the catalog (instances, images, vectors, the journal) lives."""

    # None = <home>/catalog.sqlite. postgresql://user@host:5432/db (or postgresql:///db?host=/socket/dir)
    # = a PostgreSQL database that several processes and machines share ([postgres] extra). Each home
    # still keeps its own originals and index files; the catalog's journal keeps every index current.
    url: Annotated[Annotated[str, Field(pattern=r"^postgres(ql)?://")] | None, OrNone] = None


class DecisionConfig(_Section):
    """Which answers are shown and when the answer is 'unknown'."""

    top_k: int = Field(5, ge=1)
    threshold: Annotated[float | None, OrNone] = None  # None: use the calibrated threshold stored in the library
    target_far: float = Field(0.01, gt=0, lt=1)  # calibrate: false-accept rate the threshold aims for
    # The service re-calibrates on a side thread once the gallery has changed materially (and at
    # start-up if it has since the last calibration); the CLI and the Python API never do by themselves.
    auto_calibrate: bool = True


class RerankConfig(_Section):
    """The second stage: local features verified by geometry (its constants: profiles.RerankTuning)."""

    enabled: bool = True  # extract local features at enrolment and verify at recognition
    vocabulary: str = "generic"  # "generic" (shipped, trained on scikit-image samples) or a .npz path


class FacesConfig(_Section):
    """What a faces library (``profile=faces``) keeps of the people enrolled."""

    # Off: only the face vectors are stored, never the photos, so a leaked library holds no pictures of
    # anyone; the price is that the gallery cannot be re-embedded nor shown as thumbnails.
    keep_originals: bool = True


class LimitsConfig(_Section):
    """Input limits that protect the process from hostile or accidental huge inputs."""

    max_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_pixels: int = Field(64_000_000, ge=1)  # width x height from the header, refused before decoding: decompression bombs
    # Pixels decoded at full resolution, what decoding and conversion cost: a JPEG is decoded at up to 1/8 scale
    # (DCT scaling), so it may be as large as max_pixels; PNG, WebP, TIFF, GIF and BMP have no such shortcut.
    max_decoded_pixels: int = Field(4096 * 4096, ge=1)
    min_side: int = Field(16, ge=1)
    max_images_per_instance: int = Field(64, ge=1)


class ServiceConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    auth: bool = True  # off only when explicitly disabled for local use
    api_keys: Keys = ()  # read-only keys
    admin_keys: Keys = ()  # read-write keys
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    inference_slots: int = Field(0, ge=0)  # model runs at once per process; 0 = the cores, shared among the workers
    # Admission control: a request needing inference that would wait behind more than max_queue others is
    # refused at once (503 + Retry-After), and one still waiting deadline_ms after it arrived (0 = no
    # deadline) is dropped, so that an overloaded service answers "try later" instead of everyone late.
    max_queue: int = Field(0, ge=0)  # 0 = service.state.QUEUED_PER_SLOT per inference slot
    deadline_ms: int = Field(10_000, ge=0)
    rate_limit_per_s: float = Field(0.0, ge=0)  # requests per second per API key (or per client without auth); 0 = off
    metrics_auth: bool = False  # with auth on, /metrics also needs a read or admin key
    # Collections kept open at once besides the default one; opening another closes the one unused
    # longest (when no request is using it), so a home of many collections cannot take all memory.
    max_open_collections: int = Field(16, ge=1)


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_parse_none_str="none", frozen=True, extra="forbid"
    )

    home: Path = Path(DEFAULT_HOME)
    # Which gallery of the home (instrec.library.collections): each is a complete library of its own.
    collection: str = Field(DEFAULT_COLLECTION, pattern=COLLECTION_PATTERN)
    profile: str = DEFAULT_PROFILE  # the scoring constants (instrec.profiles)
    descriptor: DescriptorConfig = DescriptorConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    index: IndexConfig = IndexConfig()
    catalog: CatalogConfig = CatalogConfig()
    decision: DecisionConfig = DecisionConfig()
    rerank: RerankConfig = RerankConfig()
    limits: LimitsConfig = LimitsConfig()
    service: ServiceConfig = ServiceConfig()
    faces: FacesConfig = FacesConfig()
    # The profile's constants, each overridable for experiments (``tuning.rerank.ratio=0.7``).
    tuning: Tuning = Tuning()

    @model_validator(mode="before")
    @classmethod
    def _profile_constants(cls, data: Any) -> Any:
        """``tuning`` starts from the profile's constants; what is given overrides them one by one."""
        if not isinstance(data, dict):
            return data
        try:
            base = profile_tuning(data.get("profile", DEFAULT_PROFILE)).model_dump()
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        given = data.get("tuning") or {}
        given = given.model_dump() if isinstance(given, Tuning) else given
        if base["face"] is None and given.get("face"):  # else a face constant would turn the profile into a face one
            raise ValueError(
                f"tuning.face.* needs a face profile (profile={FACES_PROFILE}), not {data.get('profile', DEFAULT_PROFILE)!r}"
            )
        return {**data, "tuning": _merged(base, given)}

    def scoring_key(self) -> str:
        """Digest of every setting that changes a score: a threshold calibrated under other values means
        nothing, so calibrations are stored per key. Derived from whole sections, so a new setting is
        covered the day it is added. A tuning section or constant a profile leaves unset (None) is
        left out, so adding one keeps every other profile's key, and the prior fitted under it."""
        tuning = self.tuning.model_dump(exclude_none=True)
        return short_digest({"descriptor": self.descriptor.identity(), "rerank": self.rerank.model_dump(), "tuning": tuning})

    def descriptor_key(self) -> dict[str, Any]:
        """Everything that decides what vector an image gets: two libraries are comparable iff equal."""
        if self.tuning.face is not None:
            return self.tuning.face.descriptor_key()
        return backbone_descriptor_key(self.descriptor, self.tuning.descriptor)

    @property
    def embeds_faces(self) -> bool:
        """Whether the profile describes the faces in a photo (a ``face`` section, as profile=faces has)."""
        return self.tuning.face is not None

    @property
    def local_features(self) -> bool:
        """Whether images get local features (re-ranking): ``rerank.enabled``, unless the profile embeds faces."""
        return self.rerank.enabled and not self.embeds_faces

    def with_overrides(self, overrides: Mapping[str, Any]) -> "Config":
        """A copy with ``{"section.key": value}`` applied (values may be strings). A new ``profile``
        brings its own constants; ``tuning.*`` given alongside still apply on top."""
        if not overrides:
            return self
        given = _nested(overrides)
        data = self.model_dump()
        if "profile" in given:
            del data["tuning"]
        return _validated(lambda: type(self).model_validate(_merged(data, given)))

    @classmethod
    def load(cls, home: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> "Config":
        """Defaults, then ``INSTREC_*`` environment, then ``home``, then explicit overrides (highest wins)."""
        _refuse_unknown_environment()
        config = _validated(cls)
        if home is not None:
            config = config.with_overrides({"home": str(home)})
        return config.with_overrides(overrides or {})


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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def backbone_descriptor_key(descriptor: DescriptorConfig, tuning: DescriptorTuning) -> dict[str, Any]:
    """What decides a backbone's vector: the user's descriptor settings and the profile's constants."""
    return {**descriptor.identity(), **tuning.model_dump()}


def descriptor_digest(descriptor_key: Mapping[str, Any], weights_digest: str) -> str:
    """Short stable id of a descriptor: what the catalog records next to every vector."""
    return short_digest({"descriptor": dict(descriptor_key), "weights": weights_digest})


def _nested(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        node = out
        for section in sections:
            child = node.setdefault(section, {})
            if not isinstance(child, dict):
                raise ConfigError(f"setting {section!r} has no sub-settings (got {dotted!r})")
            node = child
        node[name] = value
    return out


def _merged(base: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in given.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def _refuse_unknown_environment() -> None:
    """pydantic-settings skips ``INSTREC_`` variables that name no setting; a typo must not pass silently."""
    known = {name.upper() for name in Config.model_fields}
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX) and name.upper()[len(ENV_PREFIX) :].split("__")[0] not in known:
            raise ConfigError(
                f"unknown setting in the environment: {name}; known: " + ", ".join(f"{ENV_PREFIX}{k}" for k in sorted(known))
            )


def _validated(build: Any) -> Config:
    try:
        return build()
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(error) for error in exc.errors())) from None


def _explain(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if not where:  # a check of the whole config (an unknown profile)
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown setting {where!r}"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where!r} is a section; set one of its keys, e.g. {where}.<key>=..."
    return f"{where}: {error['msg']} (got {error['input']!r})"
