"""Shared plumbing for FAISS-backed indexes: id mapping, atomic persistence, thread settings."""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from instrec.config import usable_cores
from instrec.index.base import as_ids, as_vectors


def set_threads(threads: int) -> None:
    """FAISS's OpenMP threads (process-wide) from ``runtime.threads``: 0 = one per core.

    One thread is often the faster choice for single-query searches on a small busy machine:
    ``benchmarks/bench_search_threads.py`` measures it.
    """
    faiss.omp_set_num_threads(threads if threads > 0 else usable_cores())


def write_atomically(index: faiss.Index, path: Path) -> None:
    """Write to a temp file then rename, so a crash never leaves a half-written index behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


class FaissIndex:
    """A FAISS index addressed by our own int64 ids (inner product on unit vectors = cosine)."""

    kind = "faiss"

    def __init__(self, index: faiss.Index):
        self.index = index
        self.dim = index.d

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def needs_training(self) -> bool:
        return not self.index.is_trained

    training_size = 0  # vectors wanted by train(); 0 for indexes that need none

    def train(self, vectors: np.ndarray) -> None:
        self.index.train(as_vectors(vectors, self.dim))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dim)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = as_ids(ids)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = as_vectors(queries, self.dim)
        k = max(1, min(k, len(self))) if len(self) else 1
        if not len(self):
            n = len(queries)
            return np.full((n, 1), -np.inf, np.float32), np.full((n, 1), -1, np.int64)
        return self.index.search(queries, k)

    def save(self, path: Path) -> None:
        write_atomically(self.index, path)

    def close(self) -> None:
        """Nothing outside this process to let go of."""

    @property
    def nbytes(self) -> int:
        """Serialised size: what the index holds in RAM, give or take small bookkeeping."""
        return int(faiss.serialize_index(self.index).nbytes)
