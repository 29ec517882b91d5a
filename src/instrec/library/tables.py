"""The library's in-memory parts: who owns each vector, a readers-writer lock, search hits."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np


class ReadWriteLock:
    """Many readers or one writer. Searches share; index mutation is exclusive."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class OwnerTable:
    """Vector id -> instance pk as a dense array indexed by id, so a whole hit list is looked up in
    one vectorised step instead of a Python loop.

    Vector ids are the catalog's increasing row ids, so the array costs 8 bytes per vector ever
    made; a removed vector's slot holds -1.
    """

    def __init__(self) -> None:
        self._owner = np.full(0, -1, np.int64)

    def set(self, vector_ids: np.ndarray, instance_pks: np.ndarray) -> None:
        vector_ids = np.asarray(vector_ids, np.int64)
        if len(vector_ids) == 0:
            return
        needed = int(vector_ids.max()) + 1
        if needed > len(self._owner):
            grown = np.full(max(needed, 2 * len(self._owner)), -1, np.int64)
            grown[: len(self._owner)] = self._owner
            self._owner = grown
        self._owner[vector_ids] = instance_pks

    def clear(self, vector_ids: np.ndarray) -> None:
        vector_ids = np.asarray(vector_ids, np.int64)
        self._owner[vector_ids[vector_ids < len(self._owner)]] = -1

    def __call__(self, vector_ids: np.ndarray) -> np.ndarray:
        """Owners of ``vector_ids``; -1 for an id not (or no longer) in the index."""
        known = (vector_ids >= 0) & (vector_ids < len(self._owner))
        return np.where(known, self._owner[np.where(known, vector_ids, 0)], -1)

    @classmethod
    def of(cls, owners: dict[int, int]) -> "OwnerTable":
        table = cls()
        n = len(owners)
        table.set(np.fromiter(owners.keys(), np.int64, n), np.fromiter(owners.values(), np.int64, n))
        return table


@dataclass(frozen=True)
class SearchHits:
    """Image-level neighbours of one query: parallel arrays, best first."""

    scores: np.ndarray
    vector_ids: np.ndarray
    instance_pks: np.ndarray
