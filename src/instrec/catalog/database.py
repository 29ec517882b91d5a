"""The catalog's SQLite database: schema, one connection per thread, transactions, meta values.

WAL mode lets readers run while one writer writes; IMMEDIATE transactions make writers queue for
the lock instead of failing when they upgrade to it. Triggers append every vector and
local-feature insert/delete to ``journal`` inside the same transaction (see
:mod:`instrec.catalog.journal`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from instrec.errors import InstrecError

SCHEMA_VERSION = 2
IN_LIST_CHUNK = 900  # keys bound per "IN (...)": under SQLite's smallest variable limit (999)

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


class Database:
    """Thread-safe access to one catalog file: each thread gets its own connection."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()  # every thread's, for close()
        self._connections_lock = threading.Lock()
        self._generation = 0  # bumped by close(): a thread whose connection was closed opens a new one
        db = self.connection()
        db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = int(self.get_meta("schema_version") or SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InstrecError(f"{self.path} has catalog schema {version}; this instrec reads {SCHEMA_VERSION}")

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != self._generation:
            db = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False, factory=_TrackableConnection
            )
            _enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=60000")
            db.execute("PRAGMA secure_delete=ON")  # removed rows are zeroed, not left in free pages (privacy)
            db.row_factory = sqlite3.Row
            with self._connections_lock:
                self._connections.add(db)
                self._local.db, self._local.generation = db, self._generation
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue up instead of failing on lock upgrades."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_in(self, sql: str, keys: Sequence[Any], db: sqlite3.Connection | None = None) -> list[sqlite3.Row]:
        """Rows of ``sql``, whose ``{marks}`` is an ``IN`` list of ``keys``, bound a chunk at a time."""
        db = db or self.connection()
        keys = list(keys)
        rows: list[sqlite3.Row] = []
        for start in range(0, len(keys), IN_LIST_CHUNK):
            chunk = keys[start : start + IN_LIST_CHUNK]
            rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def truncate_wal(self) -> None:
        """Copy the write-ahead log into the file and empty it: the log still holds old page images,
        removed rows among them, until then. Readers in other processes may hold it back a while."""
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

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

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
