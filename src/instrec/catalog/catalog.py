"""The catalog: instances, images, vectors and the descriptor that made them, in SQLite (WAL).

SQLite is the source of truth. Every vector is stored here, so the ANN index is a cache that can
always be rebuilt. Triggers append every vector insert/delete to a ``journal`` table inside the same
transaction, so any process can bring its in-memory index up to date by replaying the journal past
the last sequence number it applied — this is what keeps the index consistent after a crash and
across concurrent writers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from instrec.errors import DuplicateInstanceError, InstrecError, UnknownImageError, UnknownInstanceError

SCHEMA_VERSION = 2
IN_LIST_CHUNK = 900  # keys bound per "IN (...)": under SQLite's smallest variable limit (999)
MAX_ID_LENGTH = 200
MAX_LABEL_LENGTH = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_label ON instances(label);
CREATE TABLE IF NOT EXISTS images (
    pk INTEGER PRIMARY KEY,
    instance_pk INTEGER NOT NULL REFERENCES instances(pk) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (instance_pk, sha256)
);
CREATE INDEX IF NOT EXISTS images_sha ON images(sha256);
CREATE TABLE IF NOT EXISTS vectors (
    pk INTEGER PRIMARY KEY,
    image_pk INTEGER NOT NULL REFERENCES images(pk) ON DELETE CASCADE,
    descriptor TEXT NOT NULL,
    view TEXT NOT NULL DEFAULT 'original',
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_image ON vectors(image_pk);
CREATE TABLE IF NOT EXISTS local_features (
    image_pk INTEGER PRIMARY KEY REFERENCES images(pk) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    kind TEXT NOT NULL CHECK (kind IN ('vector', 'local')),
    pk INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS vectors_added AFTER INSERT ON vectors
    BEGIN INSERT INTO journal (op, kind, pk) VALUES ('add', 'vector', NEW.pk); END;
CREATE TRIGGER IF NOT EXISTS vectors_removed AFTER DELETE ON vectors
    BEGIN INSERT INTO journal (op, kind, pk) VALUES ('remove', 'vector', OLD.pk); END;
CREATE TRIGGER IF NOT EXISTS local_features_added AFTER INSERT ON local_features
    BEGIN INSERT INTO journal (op, kind, pk) VALUES ('add', 'local', NEW.image_pk); END;
CREATE TRIGGER IF NOT EXISTS local_features_removed AFTER DELETE ON local_features
    BEGIN INSERT INTO journal (op, kind, pk) VALUES ('remove', 'local', OLD.image_pk); END;
"""


@dataclass(frozen=True)
class Instance:
    id: str
    label: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    image_count: int = 0
    pk: int = field(default=0, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "metadata": self.metadata,
            "image_count": self.image_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ImageRecord:
    id: int
    instance_id: str
    sha256: str
    source: str
    width: int
    height: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "sha256": self.sha256,
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class NewImage:
    """An image ready to be written: its record fields plus the vectors computed from it."""

    sha256: str
    source: str
    width: int
    height: int
    vectors: np.ndarray  # (n_views, dim) float32
    views: Sequence[str] = ("original",)
    local_features: bytes | None = None  # packed keypoints for geometric verification (rerank stage)


def validate_instance_id(instance_id: str) -> str:
    if not isinstance(instance_id, str) or not instance_id.strip():
        raise InstrecError("an instance id must be a non-empty string")
    if len(instance_id) > MAX_ID_LENGTH:
        raise InstrecError(f"an instance id must be at most {MAX_ID_LENGTH} characters")
    if any(ch in instance_id for ch in "/\\") or any(ord(ch) < 32 for ch in instance_id):
        raise InstrecError(f"instance id {instance_id!r} must not contain slashes or control characters")
    return instance_id


def validate_label(label: str) -> str:
    if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH:
        raise InstrecError(f"a label must be a string of at most {MAX_LABEL_LENGTH} characters")
    if any(ord(ch) < 32 and ch not in "\t" for ch in label):
        raise InstrecError("a label must not contain control characters")
    return label


def _enable_wal(db: sqlite3.Connection, patience_s: float = 60.0) -> None:
    """Switch to WAL (persistent, so usually a no-op). Two processes creating one catalog at once
    can get "database is locked" here without SQLite's busy handler ever waiting, so retry."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _TrackableConnection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot), so the catalog can track
    every thread's connection without keeping those of finished threads alive."""


class Catalog:
    """Thread-safe access to the catalog database; one connection per thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()  # every thread's, for close()
        self._connections_lock = threading.Lock()
        self._generation = 0  # bumped by close(): a thread whose connection was closed opens a new one
        db = self._connection()
        db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = int(self.get_meta("schema_version") or SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InstrecError(f"{self.path} has catalog schema {version}; this instrec reads {SCHEMA_VERSION}")

    # -- connection plumbing -------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != self._generation:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False,
                                 factory=_TrackableConnection)
            _enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=60000")
            db.row_factory = sqlite3.Row
            with self._connections_lock:
                self._connections.add(db)
                self._local.db, self._local.generation = db, self._generation
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue up instead of failing on lock upgrades."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def _query_in(self, sql: str, keys: Sequence[Any], db: sqlite3.Connection | None = None) -> list[sqlite3.Row]:
        """Rows of ``sql``, whose ``{marks}`` is an ``IN`` list of ``keys``, bound a chunk at a time."""
        db = db or self._connection()
        keys = list(keys)
        rows: list[sqlite3.Row] = []
        for start in range(0, len(keys), IN_LIST_CHUNK):
            chunk = keys[start:start + IN_LIST_CHUNK]
            rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def close(self) -> None:
        """Close every thread's connection, not just the caller's (a server closes from a worker thread).

        A thread that uses the catalog afterwards opens a new one. Connections of threads that ended
        were already closed when their thread-local storage went away.
        """
        with self._connections_lock:
            self._generation += 1
            connections = list(self._connections)
            self._connections.clear()
        for db in connections:
            db.close()
        self._local.db = None

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- instances -----------------------------------------------------------------------------
    def _instance_pk(self, db: sqlite3.Connection, instance_id: str) -> int:
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
        with self.transaction() as db:
            added, skipped = self._add(db, instance_id, images, descriptor, label, metadata, create, must_create)
        return self.get_instance(instance_id), self.get_images(added), self.get_images(skipped)

    def add_batch(self, entries: Sequence[tuple[str, Sequence[NewImage]]], descriptor: str) -> int:
        """Many instances in one transaction (bulk loads); returns the number of images added.

        Instances that do not exist yet are written with one ``executemany`` per table (their rows
        numbered up front, which the IMMEDIATE transaction makes safe); ids that exist already, or
        repeat within the batch, go through the one-by-one path with its duplicate checks.
        """
        with self.transaction() as db:
            fresh, others = self._split_fresh(db, entries)
            added = self._insert_fresh(db, fresh, descriptor)
            return added + sum(len(self._add(db, instance_id, images, descriptor)[0]) for instance_id, images in others)

    def _split_fresh(self, db: sqlite3.Connection, entries: Sequence[tuple[str, Sequence[NewImage]]]):
        ids = [validate_instance_id(instance_id) for instance_id, _ in entries]
        existing = {r[0] for r in self._query_in("SELECT id FROM instances WHERE id IN ({marks})", ids, db)}
        fresh, others, seen = [], [], set()
        for entry in entries:
            (others if entry[0] in existing or entry[0] in seen else fresh).append(entry)
            seen.add(entry[0])
        return fresh, others

    def _insert_fresh(self, db: sqlite3.Connection, entries: Sequence[tuple[str, Sequence[NewImage]]], descriptor: str) -> int:
        if not entries:
            return 0
        now = time.time()
        instance_pk = int(db.execute("SELECT COALESCE(MAX(pk), 0) FROM instances").fetchone()[0])
        image_pk = int(db.execute("SELECT COALESCE(MAX(pk), 0) FROM images").fetchone()[0])
        instances, images, vectors, local = [], [], [], []
        for instance_id, new_images in entries:
            instance_pk += 1
            instances.append((instance_pk, instance_id, validate_label(instance_id), "{}", now, now))
            seen: set[str] = set()
            for image in new_images:
                if image.sha256 in seen:
                    continue
                seen.add(image.sha256)
                image_pk += 1
                images.append((image_pk, instance_pk, image.sha256, image.source, image.width, image.height, now))
                data = np.ascontiguousarray(image.vectors, dtype=np.float32)
                vectors.extend((image_pk, descriptor, view, vec.tobytes()) for view, vec in zip(image.views, data))
                if image.local_features is not None:
                    local.append((image_pk, image.local_features))
        db.executemany("INSERT INTO instances (pk, id, label, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                       instances)
        db.executemany("INSERT INTO images (pk, instance_pk, sha256, source, width, height, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", images)
        db.executemany("INSERT INTO vectors (image_pk, descriptor, view, data) VALUES (?, ?, ?, ?)", vectors)
        db.executemany("INSERT INTO local_features (image_pk, data) VALUES (?, ?)", local)
        return len(images)

    def _add(self, db: sqlite3.Connection, instance_id: str, images: Sequence[NewImage], descriptor: str,
             label: str | None = None, metadata: dict[str, Any] | None = None, create: bool = True,
             must_create: bool = False) -> tuple[list[int], list[int]]:
        validate_instance_id(instance_id)
        now = time.time()
        added: list[int] = []
        skipped: list[int] = []
        row = db.execute("SELECT pk FROM instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None:
            if not create:
                raise UnknownInstanceError(instance_id)
            cursor = db.execute(
                "INSERT INTO instances (id, label, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (instance_id, validate_label(label if label is not None else instance_id),
                 json.dumps(metadata or {}), now, now),
            )
            instance_pk = int(cursor.lastrowid)
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
            cursor = db.execute(
                "INSERT INTO images (instance_pk, sha256, source, width, height, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (instance_pk, image.sha256, image.source, image.width, image.height, now),
            )
            image_pk = int(cursor.lastrowid)
            added.append(image_pk)
            vectors = np.ascontiguousarray(image.vectors, dtype=np.float32)
            db.executemany(
                "INSERT INTO vectors (image_pk, descriptor, view, data) VALUES (?, ?, ?, ?)",
                [(image_pk, descriptor, view, vec.tobytes()) for view, vec in zip(image.views, vectors)],
            )
            if image.local_features is not None:
                db.execute("INSERT INTO local_features (image_pk, data) VALUES (?, ?)",
                           (image_pk, image.local_features))
        if added:
            db.execute("UPDATE instances SET updated_at = ? WHERE pk = ?", (now, instance_pk))
        return added, skipped

    def _update(self, db: sqlite3.Connection, pk: int, label: str | None, metadata: dict | None, now: float) -> None:
        if label is not None:
            db.execute("UPDATE instances SET label = ?, updated_at = ? WHERE pk = ?", (validate_label(label), now, pk))
        if metadata is not None:
            db.execute("UPDATE instances SET metadata = ?, updated_at = ? WHERE pk = ?", (json.dumps(metadata), now, pk))

    def update_instance(self, instance_id: str, *, label: str | None = None, metadata: dict | None = None) -> Instance:
        with self.transaction() as db:
            self._update(db, self._instance_pk(db, instance_id), label, metadata, time.time())
        return self.get_instance(instance_id)

    def remove_instance(self, instance_id: str) -> list[str]:
        """Delete an instance, its images and vectors; returns the image hashes that lost a reference."""
        with self.transaction() as db:
            pk = self._instance_pk(db, instance_id)
            hashes = [r[0] for r in db.execute("SELECT sha256 FROM images WHERE instance_pk = ?", (pk,))]
            db.execute("DELETE FROM instances WHERE pk = ?", (pk,))
        return hashes

    def remove_image(self, image_id: int) -> str:
        with self.transaction() as db:
            row = db.execute("SELECT sha256 FROM images WHERE pk = ?", (image_id,)).fetchone()
            if row is None:
                raise UnknownImageError(image_id)
            db.execute("DELETE FROM images WHERE pk = ?", (image_id,))
        return str(row[0])

    def get_instance(self, instance_id: str) -> Instance:
        rows = self.query(_INSTANCE_SELECT + " WHERE i.id = ? GROUP BY i.pk", (instance_id,))
        if not rows:
            raise UnknownInstanceError(instance_id)
        return _instance(rows[0])

    def instances_by_pk(self, pks: Sequence[int]) -> dict[int, Instance]:
        rows = self._query_in(_INSTANCE_SELECT + " WHERE i.pk IN ({marks}) GROUP BY i.pk", pks)
        return {int(r["pk"]): _instance(r) for r in rows}

    def list_instances(self, *, offset: int = 0, limit: int = 100, search: str | None = None) -> list[Instance]:
        where, params = "", []
        if search:
            where = " WHERE i.label LIKE ? ESCAPE '\\' OR i.id LIKE ? ESCAPE '\\'"
            params = [_like(search)] * 2
        rows = self.query(
            _INSTANCE_SELECT + where + " GROUP BY i.pk ORDER BY i.pk LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_instance(r) for r in rows]

    def count_instances(self, search: str | None = None) -> int:
        if not search:
            return int(self.query("SELECT COUNT(*) FROM instances")[0][0])
        sql = "SELECT COUNT(*) FROM instances WHERE label LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\'"
        return int(self.query(sql, [_like(search)] * 2)[0][0])

    def get_images(self, image_ids: Sequence[int]) -> list[ImageRecord]:
        rows = self._query_in(_IMAGE_SELECT + " WHERE g.pk IN ({marks})", image_ids)
        return sorted((_image(r) for r in rows), key=lambda image: image.id)

    def get_image(self, image_id: int) -> ImageRecord:
        images = self.get_images([int(image_id)])
        if not images:
            raise UnknownImageError(image_id)
        return images[0]

    def images_of(self, instance_id: str) -> list[ImageRecord]:
        self.get_instance(instance_id)
        rows = self.query(_IMAGE_SELECT + " WHERE i.id = ? ORDER BY g.pk", (instance_id,))
        return [_image(r) for r in rows]

    def sha_in_use(self, sha256: str) -> bool:
        return bool(self.query("SELECT 1 FROM images WHERE sha256 = ? LIMIT 1", (sha256,)))

    def stats(self) -> dict[str, int]:
        row = self.query(
            "SELECT (SELECT COUNT(*) FROM instances), (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM vectors)"
        )[0]
        return {"instances": int(row[0]), "images": int(row[1]), "vectors": int(row[2])}

    # -- vectors & journal ---------------------------------------------------------------------
    def journal_head(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(seq), 0) FROM journal")[0][0])

    def journal_since(self, seq: int) -> list[tuple[int, str, str, int]]:
        """``(seq, op, kind, pk)`` after ``seq``: kind 'vector' names a vector, 'local' an image."""
        return [(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in self.query(
            "SELECT seq, op, kind, pk FROM journal WHERE seq > ? ORDER BY seq", (seq,)
        )]

    def journal_floor(self) -> int:
        """Highest sequence number already compacted away: a reader behind it must rebuild."""
        return int(self.get_meta("journal_floor") or 0)

    def compact_journal(self, upto: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM journal WHERE seq <= ?", (upto,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('journal_floor', ?)", (str(upto),))

    def vectors_by_pk(self, pks: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vector pks, instance pks, vectors) for the given vector pks that still exist."""
        rows = self._query_in(
            "SELECT v.pk, g.instance_pk, v.data FROM vectors v JOIN images g ON g.pk = v.image_pk WHERE v.pk IN ({marks})",
            pks,
        )
        vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows]) if rows else np.empty((0, dim), np.float32)
        return np.asarray([r[0] for r in rows], np.int64), np.asarray([r[1] for r in rows], np.int64), vectors

    def iter_vectors(self, dim: int, batch: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """All (vector pks, instance pks, vectors) in batches, for rebuilding the index."""
        last = 0
        while True:
            rows = self._connection().execute(
                "SELECT v.pk, g.instance_pk, v.data FROM vectors v JOIN images g ON g.pk = v.image_pk "
                "WHERE v.pk > ? ORDER BY v.pk LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield (
                np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                np.fromiter((r[1] for r in rows), np.int64, len(rows)),
                np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim),
            )

    def image_owners(self) -> dict[int, tuple[int, str]]:
        """image pk -> (instance pk, content hash) for every image."""
        return {int(r[0]): (int(r[1]), str(r[2])) for r in self._connection().execute(
            "SELECT pk, instance_pk, sha256 FROM images"
        )}

    def vector_owners(self) -> dict[int, int]:
        """vector pk -> instance pk for every stored vector."""
        return {int(r[0]): int(r[1]) for r in self._connection().execute(
            "SELECT v.pk, g.instance_pk FROM vectors v JOIN images g ON g.pk = v.image_pk"
        )}

    def sample_vectors(self, count: int, dim: int) -> np.ndarray:
        """About ``count`` vectors spread evenly over the key range (training data for an index).

        Read by primary key, so the cost follows ``count``, not the table (no scan of every blob);
        keys freed by removals are simply missing from the sample.
        """
        low, high = self.query("SELECT MIN(pk), MAX(pk) FROM vectors")[0]
        if low is None:
            return np.zeros((1, dim), np.float32)
        wanted = np.unique(np.linspace(low, high, max(count, 1)).round().astype(np.int64))
        vectors = self.vectors_by_pk(wanted.tolist(), dim)[2]
        return vectors if len(vectors) else np.zeros((1, dim), np.float32)

    def vectors_of_instances(self, instance_pks: Sequence[int], dim: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """instance pk -> (vector pks, vectors): every stored vector of those instances."""
        found: dict[int, list[tuple[int, bytes]]] = {}
        for row in self._query_in(
            "SELECT g.instance_pk, v.pk, v.data FROM vectors v JOIN images g ON g.pk = v.image_pk "
            "WHERE g.instance_pk IN ({marks})",
            instance_pks,
        ):
            found.setdefault(int(row[0]), []).append((int(row[1]), row[2]))
        return {
            pk: (np.asarray([r[0] for r in rows], np.int64),
                 np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim))
            for pk, rows in found.items()
        }

    def image_of_vectors(self, vector_pks: Sequence[int]) -> dict[int, int]:
        """vector pk -> image pk."""
        return {int(r[0]): int(r[1]) for r in self._query_in(
            "SELECT pk, image_pk FROM vectors WHERE pk IN ({marks})", vector_pks
        )}

    def vector_ids_of_images(self, image_pks: Sequence[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for row in self._query_in("SELECT image_pk, pk FROM vectors WHERE image_pk IN ({marks})", image_pks):
            out.setdefault(int(row[0]), []).append(int(row[1]))
        return out

    # -- local features (geometric verification) ----------------------------------------------
    def local_features_by_pk(self, image_pks: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """image pk -> (instance pk, packed local features), for those images that have them."""
        return {int(r[0]): (int(r[1]), r[2]) for r in self._query_in(
            "SELECT f.image_pk, g.instance_pk, f.data FROM local_features f JOIN images g ON g.pk = f.image_pk "
            "WHERE f.image_pk IN ({marks})", image_pks
        )}

    def iter_local_features(self, batch: int = 512) -> Iterator[tuple[list[int], list[bytes]]]:
        """Every image's packed local features, in pk order, ``batch`` images at a time."""
        last = -1
        while True:
            rows = self._connection().execute(
                "SELECT image_pk, data FROM local_features WHERE image_pk > ? ORDER BY image_pk LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [int(r[0]) for r in rows], [r[1] for r in rows]
            last = int(rows[-1][0])

    def images_without_local_features(self) -> list[int]:
        return [int(r[0]) for r in self.query(
            "SELECT pk FROM images WHERE pk NOT IN (SELECT image_pk FROM local_features) ORDER BY pk"
        )]

    def local_feature_sizes(self) -> dict[int, int]:
        """image pk -> byte length of its packed local features (SQLite reads no blob for this)."""
        return {int(r[0]): int(r[1]) for r in self.query("SELECT image_pk, length(data) FROM local_features")}

    def put_local_features(self, image_pk: int, data: bytes) -> bool:
        """Attach features to an image enrolled without them; False if the image is gone."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE pk = ?", (image_pk,)).fetchone() is None:
                return False
            db.execute("DELETE FROM local_features WHERE image_pk = ?", (image_pk,))
            db.execute("INSERT INTO local_features (image_pk, data) VALUES (?, ?)", (image_pk, data))
        return True

    def instance_of_images(self, image_pks: Sequence[int]) -> dict[int, int]:
        """image pk -> instance pk."""
        return {int(r[0]): int(r[1]) for r in self._query_in(
            "SELECT pk, instance_pk FROM images WHERE pk IN ({marks})", image_pks
        )}

    def descriptors_in_use(self) -> list[str]:
        return [r[0] for r in self.query("SELECT DISTINCT descriptor FROM vectors")]


_INSTANCE_SELECT = (
    "SELECT i.pk, i.id, i.label, i.metadata, i.created_at, i.updated_at, COUNT(g.pk) AS n "
    "FROM instances i LEFT JOIN images g ON g.instance_pk = i.pk"
)
_IMAGE_SELECT = (
    "SELECT g.pk, i.id AS instance_id, g.sha256, g.source, g.width, g.height, g.created_at "
    "FROM images g JOIN instances i ON i.pk = g.instance_pk"
)


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (wildcards escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _instance(row: sqlite3.Row) -> Instance:
    return Instance(
        id=row["id"], label=row["label"], metadata=json.loads(row["metadata"]),
        created_at=row["created_at"], updated_at=row["updated_at"], image_count=int(row["n"]), pk=int(row["pk"]),
    )


def _image(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        id=int(row["pk"]), instance_id=row["instance_id"], sha256=row["sha256"], source=row["source"],
        width=int(row["width"]), height=int(row["height"]), created_at=row["created_at"],
    )
