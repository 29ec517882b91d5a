"""Content-addressed stores of the original image files: files in the home, or rows in a shared catalog.

We keep the originals so the gallery can be re-embedded when the model changes, calibrated, and
shown as reference thumbnails. Both stores are written before the rows that reference an original
and emptied after the last of those rows is gone. Files are named by their sha256 and written
atomically; a crash can at worst leave an unreferenced file, never a half-written referenced one.
A PostgreSQL catalog keeps the originals in its database, so that every home sharing it (every
replica, on any machine) can calibrate, show thumbnails and re-extract features of any image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from instrec.catalog.database import Database


class Originals(Protocol):
    def put(self, sha256: str, data: bytes) -> object: ...

    def get(self, sha256: str) -> bytes:
        """The original's bytes; ``OSError`` (``FileNotFoundError``) if it is not stored."""
        ...

    def delete(self, sha256: str) -> None: ...


def checked(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class BlobStore:
    """Originals as files under ``root``, two hex digits of their hash per folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / checked(sha256)[:2] / sha256

    def put(self, sha256: str, data: bytes) -> Path:
        path = self.path(sha256)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{sha256}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


class DatabaseBlobStore:
    """Originals as rows of the catalog's ``originals`` table; each write is one statement (atomic)
    and journals nothing, so it does not take the writers' turn."""

    def __init__(self, db: Database):
        self._db = db

    def put(self, sha256: str, data: bytes) -> None:
        self._db.connection().execute("INSERT INTO originals VALUES (?, ?) ON CONFLICT DO NOTHING", (checked(sha256), data))

    def get(self, sha256: str) -> bytes:
        rows = self._db.query("SELECT data FROM originals WHERE sha256 = ?", (checked(sha256),))
        if not rows:
            raise FileNotFoundError(f"no original {sha256} in the catalog")
        return bytes(rows[0][0])

    def delete(self, sha256: str) -> None:
        """Delete it unless an image references it (again: enrolled meanwhile by another process)."""
        sql = "DELETE FROM originals WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM images WHERE sha256 = ?)"
        self._db.connection().execute(sql, (checked(sha256), sha256))
