"""The catalog's database: one connection per thread, transactions, meta values, and the schema.

Two backends implement it: :mod:`instrec.catalog.sqlite` (a file in the home, the default) and
:mod:`instrec.catalog.postgres` (a server several processes and machines share). The SQL the
catalog runs is written once, with ``?`` placeholders, in the dialect both accept (upserts, ``RETURNING``);
what differs between them is here as a method a backend overrides, never an ``if`` at the call site.

Triggers append every vector and local-feature insert/delete to ``journal`` inside the same
transaction (see :mod:`instrec.catalog.journal`); write transactions run one at a time, so
sequence numbers are handed out in commit order.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

from instrec.errors import ConfigError, InstrecError

SCHEMA_VERSION = 2
IN_LIST_CHUNK = 900  # keys bound per "IN (...)": under SQLite's smallest variable limit (999)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

# The tables, in either backend's column types: {int} an integer, {key} an integer primary key the
# database numbers, {real} a float, {blob} bytes, {seq} the journal's ever-growing sequence number.
# (SQLite keeps its own names: only "INTEGER PRIMARY KEY" is its rowid.)
TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    pk {key},
    id TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}',
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_label ON instances(label);
CREATE TABLE IF NOT EXISTS images (
    pk {key},
    instance_pk {int} NOT NULL REFERENCES instances(pk) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_at {real} NOT NULL,
    UNIQUE (instance_pk, sha256)
);
CREATE INDEX IF NOT EXISTS images_sha ON images(sha256);
CREATE TABLE IF NOT EXISTS vectors (
    pk {key},
    image_pk {int} NOT NULL REFERENCES images(pk) ON DELETE CASCADE,
    descriptor TEXT NOT NULL,
    view TEXT NOT NULL DEFAULT 'original',
    data {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_image ON vectors(image_pk);
CREATE TABLE IF NOT EXISTS local_features (
    image_pk {int} PRIMARY KEY REFERENCES images(pk) ON DELETE CASCADE,
    data {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    seq {seq},
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    kind TEXT NOT NULL CHECK (kind IN ('vector', 'local')),
    pk {int} NOT NULL
);
"""
# The journal's triggers: (name, table, event, op, kind, the row's key) for each.
JOURNALLED = (
    ("vectors_added", "vectors", "INSERT", "add", "vector", "NEW.pk"),
    ("vectors_removed", "vectors", "DELETE", "remove", "vector", "OLD.pk"),
    ("local_features_added", "local_features", "INSERT", "add", "local", "NEW.image_pk"),
    ("local_features_removed", "local_features", "DELETE", "remove", "local", "OLD.image_pk"),
)


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the catalog calls on a connection: ``sqlite3.Connection``'s ``execute``/``executemany``
    (rows read by position and by column name)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...


class Database:
    """Thread-safe access to one catalog: each thread gets its own connection.

    A backend provides :meth:`_connect`, :meth:`_create_schema`, :meth:`transaction` (one that
    excludes other writers) and its few dialect hooks.
    """

    location: str  # what it was opened from, for messages (a path or a URL without its password)
    like = "LIKE"  # the case-insensitive pattern match (SQLite's LIKE is so for ASCII)
    holds_originals = False  # whether the original images are stored in it too (table ``originals``)

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()  # every thread's, for close()
        self._connections_lock = threading.Lock()
        self._generation = 0  # bumped by close(): a thread whose connection was closed opens a new one
        self._create_schema()
        version = int(self.get_meta("schema_version") or SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InstrecError(f"{self.location} has catalog schema {version}; this instrec reads {SCHEMA_VERSION}")

    # -- what a backend provides ---------------------------------------------------------------
    def _connect(self) -> Connection:
        raise NotImplementedError

    def _usable(self, db: Connection) -> bool:
        """Whether a thread's open connection can still be used (a server may have dropped it)."""
        return True

    def _create_schema(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction that waits for, then excludes, every other writer of this catalog until
        it commits or rolls back: the journal's numbers are then handed out in commit order."""
        raise NotImplementedError

    def new_keys(self, db: Connection, table: str, count: int) -> list[int]:
        """``count`` primary keys for rows of ``table`` the caller inserts with their key given (bulk loads)."""
        raise NotImplementedError

    def erase_removed(self) -> None:
        """Leave, where the backend allows it, no bytes of removed rows in the database's files."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the catalog is still there (another process may have deleted its collection)."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def connection(self) -> Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != self._generation or not self._usable(db):
            db = self._connect()
            with self._connections_lock:
                self._connections.add(db)
                self._local.db, self._local.generation = db, self._generation
        return db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.connection().execute(sql, params).fetchall()

    def query_in(self, sql: str, keys: Sequence[Any], db: Connection | None = None) -> list[Any]:
        """Rows of ``sql``, whose ``{marks}`` is an ``IN`` list of ``keys``, bound a chunk at a time."""
        db = db or self.connection()
        keys = list(keys)
        rows: list[Any] = []
        for start in range(0, len(keys), IN_LIST_CHUNK):
            chunk = keys[start : start + IN_LIST_CHUNK]
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

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            put_meta(db, key, value)


def put_meta(db: Connection, key: str, value: str) -> None:
    db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def open_database(location: str | Path, schema: str | None = None) -> Database:
    """The catalog at ``location``: a ``postgresql://`` URL (in ``schema``, None: the default one),
    else the path of a SQLite file (which holds one catalog: no schema)."""
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES):
        from instrec.catalog.postgres import PostgresDatabase

        return PostgresDatabase(text, schema)
    if "://" in text:
        raise ConfigError(f"catalog {text!r}: a catalog is a SQLite file or a postgresql:// URL")
    if schema is not None:
        raise ConfigError(f"catalog {text!r}: a SQLite file holds one catalog, not schema {schema!r}")
    from instrec.catalog.sqlite import SQLiteDatabase

    return SQLiteDatabase(Path(text))
