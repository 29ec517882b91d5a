"""The catalog: instances and their images, with the vectors, local features and journal stored
alongside them in one database (a SQLite file, or PostgreSQL), the source of truth every index is
rebuilt from.

Writes that belong together (an image, its vectors and its local features) go in one transaction,
so a crash leaves either all of them or none.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec.catalog.blobs import DatabaseBlobStore
from instrec.catalog.database import Connection, open_database
from instrec.catalog.features import FeatureStore
from instrec.catalog.journal import Journal
from instrec.catalog.records import ImageRecord, Instance, NewImage, validate_instance_id, validate_label
from instrec.catalog.vectors import VectorStore
from instrec.errors import DuplicateInstanceError, UnknownImageError, UnknownInstanceError

IDENTITY = "catalog_id"  # the meta key of Catalog.identity


class Catalog:
    """Thread-safe; one connection per thread. Vectors, local features and the journal are reached
    through ``vectors``, ``features`` and ``journal``; ``originals``, where the database holds them."""

    def __init__(self, location: Path | str, schema: str | None = None):
        """``location``: the path of a SQLite file, or a ``postgresql://`` URL (``schema``: the catalog's
        schema in that database, None for the default one)."""
        self._db = open_database(location, schema)
        self.location = self._db.location
        self.vectors = VectorStore(self._db)
        self.features = FeatureStore(self._db)
        self.journal = Journal(self._db)
        # Where the originals go when the database holds them (PostgreSQL); None: files in the home.
        self.originals = DatabaseBlobStore(self._db) if self._db.holds_originals else None
        self.identity = self._identity()

    def _identity(self) -> str:
        """This catalog's random id, made by whoever opened it first: a catalog deleted and made again
        under the same name (a collection's schema) is another one, whose journal starts afresh."""
        found = self._db.get_meta(IDENTITY)
        if found is not None:  # opening a catalog takes no writer lock
            return found
        with self._db.transaction() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (IDENTITY, uuid.uuid4().hex))
            return str(db.execute("SELECT value FROM meta WHERE key = ?", (IDENTITY,)).fetchone()[0])

    def close(self) -> None:
        """Close every thread's connection; a thread that uses the catalog afterwards opens a new one."""
        self._db.close()

    def exists(self) -> bool:
        """Whether this catalog is still there: its file, or its PostgreSQL schema, may have been deleted
        (and made again: then it is another catalog) by another process."""
        return self._db.exists() and self.get_meta(IDENTITY) == self.identity

    def erase_removed(self) -> None:
        """Leave no bytes of removed rows in the database's files, as far as its backend allows."""
        self._db.erase_removed()

    def get_meta(self, key: str) -> str | None:
        return self._db.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self._db.set_meta(key, value)

    # -- instances -----------------------------------------------------------------------------
    def _instance_pk(self, db: Connection, instance_id: str) -> int:
        row = db.execute("SELECT pk FROM instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None:
            raise UnknownInstanceError(instance_id)
        return int(row[0])

    def add_images(
        self,
        instance_id: str,
        images: Sequence[NewImage],
        descriptor: str,
        *,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        create: bool = True,
        must_create: bool = False,
    ) -> tuple[Instance, list[ImageRecord], list[ImageRecord]]:
        """Write an instance (created if needed) and its new images + vectors in ONE transaction.

        Returns (instance, added images, images skipped because the same content is already
        enrolled for this instance). Either everything is written or nothing is.
        """
        with self._db.transaction() as db:
            added, skipped = self._add(db, instance_id, images, descriptor, label, metadata, create, must_create)
        return self.get_instance(instance_id), self.get_images(added), self.get_images(skipped)

    def add_batch(self, entries: Sequence[tuple[str, Sequence[NewImage]]], descriptor: str) -> int:
        """Many instances in one transaction (bulk loads); returns the number of images added.

        Instances that do not exist yet are written with one ``executemany`` per table (their rows
        numbered up front by the backend's ``new_keys``); ids that exist already, or repeat within
        the batch, go through the one-by-one path with its duplicate checks.
        """
        with self._db.transaction() as db:
            fresh, others = self._split_fresh(db, entries)
            added = self._insert_fresh(db, fresh, descriptor)
            return added + sum(len(self._add(db, instance_id, images, descriptor)[0]) for instance_id, images in others)

    def _split_fresh(
        self, db: Connection, entries: Sequence[tuple[str, Sequence[NewImage]]]
    ) -> tuple[list[tuple[str, Sequence[NewImage]]], list[tuple[str, Sequence[NewImage]]]]:
        ids = [instance_id for instance_id, _ in entries]
        existing = {r[0] for r in self._db.query_in("SELECT id FROM instances WHERE id IN ({marks})", ids, db)}
        fresh: list[tuple[str, Sequence[NewImage]]] = []
        others: list[tuple[str, Sequence[NewImage]]] = []
        seen: set[str] = set()
        for entry in entries:
            if entry[0] in existing or entry[0] in seen:
                others.append(entry)
            else:
                fresh.append((validate_instance_id(entry[0]), entry[1]))
            seen.add(entry[0])
        return fresh, others

    def _insert_fresh(self, db: Connection, entries: Sequence[tuple[str, Sequence[NewImage]]], descriptor: str) -> int:
        if not entries:
            return 0
        now = time.time()
        unique = [(instance_id, _distinct(new_images)) for instance_id, new_images in entries]
        instance_pks = iter(self._db.new_keys(db, "instances", len(unique)))
        image_pks = iter(self._db.new_keys(db, "images", sum(len(new) for _, new in unique)))
        instances: list[tuple[int, str, str, str, float, float]] = []
        images: list[tuple[int, int, str, str, int, int, float]] = []
        vectors: list[tuple[int, str, str, bytes]] = []
        local: list[tuple[int, bytes]] = []
        for instance_id, new_images in unique:
            instance_pk = next(instance_pks)
            instances.append((instance_pk, instance_id, validate_label(instance_id), "{}", now, now))
            for image in new_images:
                image_pk = next(image_pks)
                images.append((image_pk, instance_pk, image.sha256, image.source, image.width, image.height, now))
                data = np.ascontiguousarray(image.vectors, dtype=np.float32)
                vectors.extend((image_pk, descriptor, view, vec.tobytes()) for view, vec in zip(image.views, data))
                if image.local_features is not None:
                    local.append((image_pk, image.local_features))
        db.executemany(
            "INSERT INTO instances (pk, id, label, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", instances
        )
        db.executemany(
            "INSERT INTO images (pk, instance_pk, sha256, source, width, height, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", images
        )
        db.executemany("INSERT INTO vectors (image_pk, descriptor, view, data) VALUES (?, ?, ?, ?)", vectors)
        db.executemany("INSERT INTO local_features (image_pk, data) VALUES (?, ?)", local)
        return len(images)

    def _add(
        self,
        db: Connection,
        instance_id: str,
        images: Sequence[NewImage],
        descriptor: str,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        create: bool = True,
        must_create: bool = False,
    ) -> tuple[list[int], list[int]]:
        now = time.time()
        added: list[int] = []
        skipped: list[int] = []
        row = db.execute("SELECT pk FROM instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None:
            if not create:
                raise UnknownInstanceError(instance_id)
            validate_instance_id(instance_id)  # new ids only: one stored before a rule changed stays usable
            instance_pk = _inserted(
                db,
                "INSERT INTO instances (id, label, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (instance_id, validate_label(label if label is not None else instance_id), json.dumps(metadata or {}), now, now),
            )
        else:
            if must_create:
                raise DuplicateInstanceError(f"an instance with id {instance_id!r} exists already")
            instance_pk = int(row[0])
            if metadata is not None or label is not None:
                self._update(db, instance_pk, label, metadata, now)
        seen: set[str] = set()
        for image in images:
            existing = db.execute(
                "SELECT pk FROM images WHERE instance_pk = ? AND sha256 = ?", (instance_pk, image.sha256)
            ).fetchone()
            if existing is not None:
                skipped.append(int(existing[0]))
                continue
            if image.sha256 in seen:
                continue
            seen.add(image.sha256)
            image_pk = _inserted(
                db,
                "INSERT INTO images (instance_pk, sha256, source, width, height, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (instance_pk, image.sha256, image.source, image.width, image.height, now),
            )
            added.append(image_pk)
            vectors = np.ascontiguousarray(image.vectors, dtype=np.float32)
            db.executemany(
                "INSERT INTO vectors (image_pk, descriptor, view, data) VALUES (?, ?, ?, ?)",
                [(image_pk, descriptor, view, vec.tobytes()) for view, vec in zip(image.views, vectors)],
            )
            if image.local_features is not None:
                db.execute("INSERT INTO local_features (image_pk, data) VALUES (?, ?)", (image_pk, image.local_features))
        if added:
            db.execute("UPDATE instances SET updated_at = ? WHERE pk = ?", (now, instance_pk))
        return added, skipped

    def _update(self, db: Connection, pk: int, label: str | None, metadata: dict | None, now: float) -> None:
        if label is not None:
            db.execute("UPDATE instances SET label = ?, updated_at = ? WHERE pk = ?", (validate_label(label), now, pk))
        if metadata is not None:
            db.execute("UPDATE instances SET metadata = ?, updated_at = ? WHERE pk = ?", (json.dumps(metadata), now, pk))

    def update_instance(self, instance_id: str, *, label: str | None = None, metadata: dict | None = None) -> Instance:
        with self._db.transaction() as db:
            self._update(db, self._instance_pk(db, instance_id), label, metadata, time.time())
        return self.get_instance(instance_id)

    def remove_instance(self, instance_id: str) -> list[str]:
        """Delete an instance, its images and vectors; returns the image hashes that lost a reference."""
        with self._db.transaction() as db:
            pk = self._instance_pk(db, instance_id)
            hashes = [r[0] for r in db.execute("SELECT sha256 FROM images WHERE instance_pk = ?", (pk,))]
            db.execute("DELETE FROM instances WHERE pk = ?", (pk,))
        return hashes

    def remove_image(self, image_id: int) -> str:
        with self._db.transaction() as db:
            row = db.execute("SELECT sha256 FROM images WHERE pk = ?", (image_id,)).fetchone()
            if row is None:
                raise UnknownImageError(image_id)
            db.execute("DELETE FROM images WHERE pk = ?", (image_id,))
        return str(row[0])

    def get_instance(self, instance_id: str) -> Instance:
        rows = self._db.query(_INSTANCE_SELECT + " WHERE i.id = ? GROUP BY i.pk", (instance_id,))
        if not rows:
            raise UnknownInstanceError(instance_id)
        return _instance(rows[0])

    def instances_by_pk(self, pks: Sequence[int]) -> dict[int, Instance]:
        rows = self._db.query_in(_INSTANCE_SELECT + " WHERE i.pk IN ({marks}) GROUP BY i.pk", pks)
        return {int(r["pk"]): _instance(r) for r in rows}

    def list_instances(self, *, offset: int = 0, limit: int = 100, search: str | None = None) -> list[Instance]:
        where, params = "", []
        if search:
            where = f" WHERE i.label {self._db.like} ? ESCAPE '\\' OR i.id {self._db.like} ? ESCAPE '\\'"
            params = [_like(search)] * 2
        rows = self._db.query(
            _INSTANCE_SELECT + where + " GROUP BY i.pk ORDER BY i.pk LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_instance(r) for r in rows]

    def count_instances(self, search: str | None = None) -> int:
        if not search:
            return int(self._db.query("SELECT COUNT(*) FROM instances")[0][0])
        like = self._db.like
        sql = f"SELECT COUNT(*) FROM instances WHERE label {like} ? ESCAPE '\\' OR id {like} ? ESCAPE '\\'"
        return int(self._db.query(sql, [_like(search)] * 2)[0][0])

    def get_images(self, image_ids: Sequence[int]) -> list[ImageRecord]:
        rows = self._db.query_in(_IMAGE_SELECT + " WHERE g.pk IN ({marks})", image_ids)
        return sorted((_image(r) for r in rows), key=lambda image: image.id)

    def get_image(self, image_id: int) -> ImageRecord:
        images = self.get_images([int(image_id)])
        if not images:
            raise UnknownImageError(image_id)
        return images[0]

    def images_of(self, instance_id: str) -> list[ImageRecord]:
        self.get_instance(instance_id)
        rows = self._db.query(_IMAGE_SELECT + " WHERE i.id = ? ORDER BY g.pk", (instance_id,))
        return [_image(r) for r in rows]

    def sha_in_use(self, sha256: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM images WHERE sha256 = ? LIMIT 1", (sha256,)))

    def stats(self) -> dict[str, int]:
        row = self._db.query(
            "SELECT (SELECT COUNT(*) FROM instances), (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM vectors)"
        )[0]
        return {"instances": int(row[0]), "images": int(row[1]), "vectors": int(row[2])}

    def image_owners(self) -> dict[int, tuple[int, str]]:
        """image pk -> (instance pk, content hash) for every image."""
        return {
            int(r[0]): (int(r[1]), str(r[2])) for r in self._db.connection().execute("SELECT pk, instance_pk, sha256 FROM images")
        }

    def instance_of_images(self, image_pks: Sequence[int]) -> dict[int, int]:
        """image pk -> instance pk."""
        return {
            int(r[0]): int(r[1]) for r in self._db.query_in("SELECT pk, instance_pk FROM images WHERE pk IN ({marks})", image_pks)
        }


_INSTANCE_SELECT = (
    "SELECT i.pk, i.id, i.label, i.metadata, i.created_at, i.updated_at, COUNT(g.pk) AS n "
    "FROM instances i LEFT JOIN images g ON g.instance_pk = i.pk"
)
_IMAGE_SELECT = (
    "SELECT g.pk, i.id AS instance_id, g.sha256, g.source, g.width, g.height, g.created_at "
    "FROM images g JOIN instances i ON i.pk = g.instance_pk"
)


def _inserted(db: Connection, sql: str, params: Sequence[Any]) -> int:
    """The key the database gave the row an INSERT wrote."""
    return int(db.execute(sql + " RETURNING pk", params).fetchone()[0])


def _distinct(images: Sequence[NewImage]) -> list[NewImage]:
    """The first image of each content hash, in order."""
    first: dict[str, NewImage] = {}
    for image in images:
        first.setdefault(image.sha256, image)
    return list(first.values())


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (wildcards escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _instance(row: Any) -> Instance:
    return Instance(
        id=row["id"],
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        image_count=int(row["n"]),
        pk=int(row["pk"]),
    )


def _image(row: Any) -> ImageRecord:
    return ImageRecord(
        id=int(row["pk"]),
        instance_id=row["instance_id"],
        sha256=row["sha256"],
        source=row["source"],
        width=int(row["width"]),
        height=int(row["height"]),
        created_at=row["created_at"],
    )
