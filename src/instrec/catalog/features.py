"""Packed local features (keypoints for geometric verification), one blob per image."""

from __future__ import annotations

from typing import Iterator, Sequence

from instrec.catalog.database import Database


class FeatureStore:
    def __init__(self, db: Database):
        self._db = db

    def of_images(self, image_pks: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """image pk -> (instance pk, packed local features), for those images that have them."""
        return {
            int(r[0]): (int(r[1]), r[2])
            for r in self._db.query_in(
                "SELECT f.image_pk, g.instance_pk, f.data FROM local_features f JOIN images g ON g.pk = f.image_pk "
                "WHERE f.image_pk IN ({marks})",
                image_pks,
            )
        }

    def iterate(self, batch: int = 512) -> Iterator[tuple[list[int], list[bytes]]]:
        """Every image's packed local features, in pk order, ``batch`` images at a time."""
        last = -1
        while True:
            rows = (
                self._db.connection()
                .execute(
                    "SELECT image_pk, data FROM local_features WHERE image_pk > ? ORDER BY image_pk LIMIT ?",
                    (last, batch),
                )
                .fetchall()
            )
            if not rows:
                return
            yield [int(r[0]) for r in rows], [r[1] for r in rows]
            last = int(rows[-1][0])

    def missing(self) -> list[int]:
        """Images enrolled without local features, in pk order."""
        return [
            int(r[0])
            for r in self._db.query("SELECT pk FROM images WHERE pk NOT IN (SELECT image_pk FROM local_features) ORDER BY pk")
        ]

    def sizes(self) -> dict[int, int]:
        """image pk -> byte length of its packed local features (the database reads no blob for this)."""
        return {int(r[0]): int(r[1]) for r in self._db.query("SELECT image_pk, length(data) FROM local_features")}

    def put(self, image_pk: int, data: bytes) -> bool:
        """Attach features to an image enrolled without them; False if the image is gone."""
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE pk = ?", (image_pk,)).fetchone() is None:
                return False
            db.execute("DELETE FROM local_features WHERE image_pk = ?", (image_pk,))
            db.execute("INSERT INTO local_features (image_pk, data) VALUES (?, ?)", (image_pk, data))
        return True
