"""PCA-whitening learned without labels: a linear map applied to every descriptor, part of the descriptor.

Descriptors of one backbone share a few dominant directions (what every photo has: background,
lighting, the backbone's own biases), and those dominate cosine similarity. Fitting PCA on an
unlabelled pool of photos like the gallery's and dividing each principal direction by a power of
its standard deviation lets the rarer, more telling directions count; keeping only the top
directions cuts every stored vector and the index 3-5x (1280 -> 256-512 dimensions).

``power`` sets how far it whitens: 0 only rotates and truncates (plain PCA reduction), 1 gives every
kept direction unit variance. ``shrinkage`` adds that share of the mean eigenvalue before the power,
so near-empty directions of a small pool are not blown up into noise.

The fitted map is a file (``instrec whiten``); ``descriptor.whitening`` names it, so it takes part
in the descriptor's identity: a library built with one map refuses vectors made with another. A
model directory of ``instrec train`` holds its learned projection in this format, as
``MODEL_PROJECTION``, so ``descriptor.whitening`` takes that directory too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from instrec.errors import ConfigError, ImageError
from instrec.images import load_images

_FORMAT = 1
MODEL_PROJECTION = "projection.npz"  # a trained model directory's projection (instrec.training.model)


def projection_of(whitening: str | None, weights: str | None) -> str | None:
    """The map a descriptor applies: ``whitening``, or the projection a fine-tuned model directory given as
    ``weights`` was trained with (its backbone means nothing without it)."""
    trained = weights if weights is not None and (Path(weights) / MODEL_PROJECTION).is_file() else None
    if trained is None or whitening is None:
        return whitening or trained
    if Path(whitening).resolve() != Path(trained).resolve():
        raise ConfigError(
            f"descriptor.weights={weights} brings the projection it was trained with: leave descriptor.whitening unset"
        )
    return whitening


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # float32 (input_dim,)
    projection: np.ndarray  # float32 (input_dim, dims): principal directions scaled by variance^(-power/2)
    explained: float  # share of the pool's variance the kept directions carry
    pool_size: int
    power: float
    shrinkage: float

    @property
    def input_dim(self) -> int:
        return self.projection.shape[0]

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    @property
    def digest(self) -> str:
        """Content hash: two files with the same map have the same digest, wherever they lie."""
        h = hashlib.sha256()
        for part in (self.mean, self.projection):
            h.update(np.ascontiguousarray(part, np.float32).tobytes())
        return h.hexdigest()[:16]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(n, input_dim) descriptors -> (n, dims) whitened unit vectors."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.input_dim)
        out = (vectors - self.mean) @ self.projection
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:  # np.savez would append .npz to a name without it
            np.savez(
                handle,
                format=_FORMAT,
                mean=self.mean,
                projection=self.projection,
                explained=self.explained,
                pool_size=self.pool_size,
                power=self.power,
                shrinkage=self.shrinkage,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Whitening":
        """A saved map, or a trained model directory's; ConfigError naming the file when it is missing or not one."""
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_PROJECTION
        if not path.is_file():
            raise ConfigError(f"descriptor.whitening: no file {path} (fit one with `instrec whiten` or `instrec train`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != _FORMAT:
                    raise ConfigError(f"descriptor.whitening: {path} has format {int(data['format'])}, expected {_FORMAT}")
                return cls(
                    data["mean"].astype(np.float32),
                    data["projection"].astype(np.float32),
                    float(data["explained"]),
                    int(data["pool_size"]),
                    float(data["power"]),
                    float(data["shrinkage"]),
                )
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip, key or shape errors all mean "not a whitening file"
            raise ConfigError(f"descriptor.whitening: {path} is not a whitening file ({exc})") from exc


def fit_whitening(vectors: np.ndarray, dims: int, power: float = 0.5, shrinkage: float = 0.1) -> Whitening:
    """PCA-whitening of a pool of descriptors (n, d), keeping the top ``dims`` directions.

    A pool of n vectors spans at most n - 1 directions, so ``dims`` must be below n.
    """
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ConfigError("whitening needs a pool of at least 2 descriptors")
    if not 1 <= dims < len(vectors) or dims > vectors.shape[1]:
        raise ConfigError(
            f"whitening: dims must be in [1, {min(len(vectors) - 1, vectors.shape[1])}] "
            f"for a pool of {len(vectors)} {vectors.shape[1]}-d descriptors, got {dims}"
        )
    if not 0 <= power <= 1 or shrinkage < 0:
        raise ConfigError("whitening: power must be in [0, 1] and shrinkage >= 0")
    mean = vectors.mean(axis=0)
    _, singular, directions = np.linalg.svd(vectors - mean, full_matrices=False)
    variance = singular**2 / len(vectors)
    total = float(variance.sum())
    if total <= 0:
        raise ConfigError("whitening: the pool's descriptors are all identical")
    kept = variance[:dims] + shrinkage * total / len(variance)
    projection = directions[:dims].T / kept ** (power / 2)
    return Whitening(
        mean.astype(np.float32),
        projection.astype(np.float32),
        float(variance[:dims].sum() / total),
        len(vectors),
        power,
        shrinkage,
    )


def embed_pool(
    embedder: Any, files: Sequence[Path], limits: Any, progress: Callable[[int, int], None] | None = None, batch: int = 32
) -> tuple[np.ndarray, list[ImageError]]:
    """Raw descriptors of a pool of photo files for :func:`fit_whitening` (``embedder`` must not whiten),
    and the files that could not be read (skipped: a pool is unlabelled bulk, one bad file loses nothing)."""
    parts, skipped = [], []
    for start in range(0, len(files), batch):
        loaded, errors = load_images(files[start : start + batch], limits, skip_bad=True)
        skipped.extend(errors)
        if loaded:
            parts.append(embedder.embed([image.pixels for image in loaded]))
        if progress is not None:
            progress(min(start + batch, len(files)), len(files))
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    return vectors, skipped
