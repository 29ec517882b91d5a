"""The contract every vector index backend fulfils, and the registry that names them.

Vectors are L2-normalised, so inner product == cosine similarity. Ids are the catalog's vector
primary keys (int64); removing an id must make it unreachable at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from instrec.config import IndexConfig
from instrec.errors import ConfigError


@runtime_checkable
class VectorIndex(Protocol):
    kind: str
    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row, best first; missing slots have id -1."""
        ...

    @property
    def needs_training(self) -> bool: ...

    @property
    def training_size(self) -> int:
        """Vectors wanted by train(); 0 for indexes that need none."""
        ...

    def train(self, vectors: np.ndarray) -> None: ...

    def save(self, path: Path) -> None: ...

    @property
    def nbytes(self) -> int: ...

    def close(self) -> None:
        """Let go of what the index holds outside this process (a connection); the object is done."""
        ...


IndexFactory = Callable[[int, IndexConfig, int], VectorIndex]
IndexLoader = Callable[[Path, IndexConfig], VectorIndex]
_BACKENDS: dict[str, tuple[IndexFactory, IndexLoader]] = {}


def register_index(kind: str, loader: IndexLoader) -> Callable[[IndexFactory], IndexFactory]:
    """Register a backend under ``kind`` (the value of ``index.backend``)."""

    def decorate(factory: IndexFactory) -> IndexFactory:
        if kind in _BACKENDS:
            raise ValueError(f"index backend {kind!r} is registered twice")
        _BACKENDS[kind] = (factory, loader)
        return factory

    return decorate


def list_indexes() -> list[str]:
    return sorted(_BACKENDS)


def _backend(kind: str) -> tuple[IndexFactory, IndexLoader]:
    if kind not in _BACKENDS:
        raise ConfigError(f"unknown index backend {kind!r}; known: {', '.join(list_indexes())}")
    return _BACKENDS[kind]


def create_index(kind: str, dim: int, config: IndexConfig, expected_size: int = 0) -> VectorIndex:
    """A new empty index of backend ``kind``, sized for about ``expected_size`` vectors."""
    return _backend(kind)[0](dim, config, expected_size)


def load_index(kind: str, path: Path, config: IndexConfig) -> VectorIndex:
    return _backend(kind)[1](path, config)


def as_ids(ids: np.ndarray | list[int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def as_vectors(vectors: np.ndarray, dim: int) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {array.shape}")
    return array
