"""The SQLite catalog: one file in the home, the embedded default.

WAL mode lets readers run while one writer writes; IMMEDIATE transactions make writers queue for
the lock instead of failing when they upgrade to it (and so number the journal in commit order).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, cast

from instrec.catalog.database import JOURNALLED, SCHEMA_VERSION, TABLES, Connection, Database

_TYPES = {
    "int": "INTEGER",
    "key": "INTEGER PRIMARY KEY",
    "real": "REAL",
    "blob": "BLOB",
    "seq": "INTEGER PRIMARY KEY AUTOINCREMENT",
}
_SCHEMA = TABLES.format(**_TYPES) + "".join(
    f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table}\n"
    f"    BEGIN INSERT INTO journal (op, kind, pk) VALUES ('{op}', '{kind}', {key}); END;\n"
    for name, table, event, op, kind, key in JOURNALLED
)


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


class SQLiteDatabase(Database):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _connect(self) -> Connection:
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False, factory=_TrackableConnection)
        _enable_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=60000")
        db.execute("PRAGMA secure_delete=ON")  # removed rows are zeroed, not left in free pages (privacy)
        db.row_factory = sqlite3.Row
        return db

    def exists(self) -> bool:
        return self.path.is_file()

    def _create_schema(self) -> None:
        db = cast(sqlite3.Connection, self.connection())  # executescript is SQLite's own
        db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        db.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """An IMMEDIATE transaction: writers queue up instead of failing on lock upgrades."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def new_keys(self, db: Connection, table: str, count: int) -> list[int]:
        """The keys after the highest in use: safe since the transaction holds the write lock."""
        top = int(db.execute(f"SELECT COALESCE(MAX(pk), 0) FROM {table}").fetchone()[0])
        return list(range(top + 1, top + 1 + count))

    def erase_removed(self) -> None:
        """Copy the write-ahead log into the file and empty it: the log still holds old page images,
        removed rows among them, until then (freed pages are zeroed: secure_delete). Readers in other
        processes may hold it back a while."""
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
