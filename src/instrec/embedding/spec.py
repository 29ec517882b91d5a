"""What is known of a backbone without building it: no torch here, so a process whose ONNX graph
is cached can run without importing torch (which alone takes seconds).

A backbone built from a weights file is remembered in the cache directory with that file's size
and modification time; while they are unchanged, its spec and weights digest are read back instead
of building the network (and hashing the file) again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from instrec.errors import BackboneError

RANDOM_INIT = "random-init"
"""Pass as ``weights`` to build untrained weights (tests, training from scratch); also its digest."""

MODEL_BACKBONE = "backbone.pt"
"""A fine-tuned model directory's backbone weights (``instrec train --method partial|full``)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """Static facts about a backbone: output width and the input normalisation its weights expect."""

    name: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stride: int | None  # input pixels per feature-map cell; None: the backbone already pools to (N, C)
    input_multiple: int = 1  # input sides must be multiples of this (the Embedder rounds to it)


def weights_file_in(weights: str | None) -> str | None:
    """``weights`` itself, or where it is a fine-tuned model directory, the backbone weights file in it."""
    if weights is None or weights == RANDOM_INIT or not Path(weights).is_dir():
        return weights
    path = Path(weights) / MODEL_BACKBONE
    if not path.is_file():
        raise BackboneError(f"descriptor.weights: {weights} is a directory without {MODEL_BACKBONE}, not a fine-tuned model")
    return str(path)


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the weights file's sha256: content, not name, identifies weights."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
    except OSError as exc:
        raise BackboneError(f"cannot read weights file {path}: {exc}") from exc
    return sha.hexdigest()[:16]


def remember(cache_dir: Path, name: str, weights: str | None, spec: BackboneSpec, digest: str, weights_file: Path) -> None:
    """Record what backbone ``name`` built from ``weights`` is (written atomically: readers see all or nothing)."""
    stat = weights_file.stat()
    facts = {
        "key": _key(name, weights),
        "spec": asdict(spec),
        "weights_digest": digest,
        "weights_file": str(weights_file.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    path = _facts_path(cache_dir, name, weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(facts))
    os.replace(tmp, path)


def remembered(cache_dir: Path, name: str, weights: str | None) -> tuple[BackboneSpec, str] | None:
    """(spec, weights digest) of backbone ``name`` built from ``weights``, if remembered and its weights
    file is unchanged; else None."""
    try:
        facts = json.loads(_facts_path(cache_dir, name, weights).read_text())
        stat = Path(facts["weights_file"]).stat()
        if facts["key"] != _key(name, weights) or (stat.st_size, stat.st_mtime_ns) != (facts["size"], facts["mtime_ns"]):
            return None
        spec = facts["spec"]
        return BackboneSpec(**{**spec, "mean": tuple(spec["mean"]), "std": tuple(spec["std"])}), str(facts["weights_digest"])
    except (OSError, ValueError, KeyError, TypeError):  # absent, stale or from another version: build it
        return None


def _key(name: str, weights: str | None) -> list[str | None]:
    """Where ``weights`` is a file, its absolute path: the same relative path elsewhere is another file."""
    return [name, weights if weights in (None, RANDOM_INIT) else str(Path(weights).resolve())]


def _facts_path(cache_dir: Path, name: str, weights: str | None) -> Path:
    return cache_dir / f"backbone-{hashlib.sha256(json.dumps(_key(name, weights)).encode()).hexdigest()[:16]}.json"
