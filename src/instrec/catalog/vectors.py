"""Stored vectors: read by key, by image, by instance, or all of them for an index rebuild."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from instrec.catalog.database import Database


class VectorStore:
    def __init__(self, db: Database):
        self._db = db

    def by_pk(self, pks: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vector pks, instance pks, vectors) for the given vector pks that still exist."""
        rows = self._db.query_in(
            "SELECT v.pk, g.instance_pk, v.data FROM vectors v JOIN images g ON g.pk = v.image_pk WHERE v.pk IN ({marks})",
            pks,
        )
        vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows]) if rows else np.empty((0, dim), np.float32)
        return np.asarray([r[0] for r in rows], np.int64), np.asarray([r[1] for r in rows], np.int64), vectors

    def iterate(self, dim: int, batch: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """All (vector pks, instance pks, vectors) in batches, for rebuilding the index."""
        last = 0
        while True:
            rows = (
                self._db.connection()
                .execute(
                    "SELECT v.pk, g.instance_pk, v.data FROM vectors v JOIN images g ON g.pk = v.image_pk "
                    "WHERE v.pk > ? ORDER BY v.pk LIMIT ?",
                    (last, batch),
                )
                .fetchall()
            )
            if not rows:
                return
            last = rows[-1][0]
            yield (
                np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                np.fromiter((r[1] for r in rows), np.int64, len(rows)),
                np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim),
            )

    def owners(self) -> dict[int, int]:
        """vector pk -> instance pk for every stored vector."""
        return {
            int(r[0]): int(r[1])
            for r in self._db.connection().execute("SELECT v.pk, g.instance_pk FROM vectors v JOIN images g ON g.pk = v.image_pk")
        }

    def sample(self, count: int, dim: int) -> np.ndarray:
        """About ``count`` vectors spread evenly over the key range (training data for an index).

        Read by primary key, so the cost follows ``count``, not the table (no scan of every blob);
        keys freed by removals are simply missing from the sample.
        """
        low, high = self._db.query("SELECT MIN(pk), MAX(pk) FROM vectors")[0]
        if low is None:
            return np.zeros((1, dim), np.float32)
        wanted = np.unique(np.linspace(low, high, max(count, 1)).round().astype(np.int64))
        vectors = self.by_pk(wanted.tolist(), dim)[2]
        return vectors if len(vectors) else np.zeros((1, dim), np.float32)

    def image_of(self, vector_pks: Sequence[int]) -> dict[int, int]:
        """vector pk -> image pk."""
        return {
            int(r[0]): int(r[1]) for r in self._db.query_in("SELECT pk, image_pk FROM vectors WHERE pk IN ({marks})", vector_pks)
        }

    def of_images(self, image_pks: Sequence[int]) -> dict[int, list[int]]:
        """image pk -> its vector pks."""
        out: dict[int, list[int]] = {}
        for row in self._db.query_in("SELECT image_pk, pk FROM vectors WHERE image_pk IN ({marks})", image_pks):
            out.setdefault(int(row[0]), []).append(int(row[1]))
        return out
