"""The journal: every vector and local-feature insert or delete, numbered, written by triggers.

Every vector is stored in the catalog, so the ANN index and the local-feature index are caches that
can always be rebuilt. A process brings its caches up to date by replaying the journal past the
last sequence number it applied: this keeps them consistent after a crash and across concurrent
writers, in this process, in others sharing the home, or on other machines sharing a PostgreSQL
catalog. Writers take turns (see :mod:`instrec.catalog.database`), so a number is visible only
once every lower one is: a reader that has applied up to N never misses one below N.
"""

from __future__ import annotations

from instrec.catalog.database import Database, put_meta


class Journal:
    def __init__(self, db: Database):
        self._db = db

    def head(self) -> int:
        return int(self._db.query("SELECT COALESCE(MAX(seq), 0) FROM journal")[0][0])

    def since(self, seq: int) -> list[tuple[int, str, str, int]]:
        """``(seq, op, kind, pk)`` after ``seq``: kind 'vector' names a vector, 'local' an image."""
        return [
            (int(r[0]), str(r[1]), str(r[2]), int(r[3]))
            for r in self._db.query("SELECT seq, op, kind, pk FROM journal WHERE seq > ? ORDER BY seq", (seq,))
        ]

    def floor(self) -> int:
        """Highest sequence number already compacted away: a reader behind it must rebuild."""
        return int(self._db.get_meta("journal_floor") or 0)

    def compact(self, upto: int) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM journal WHERE seq <= ?", (upto,))
            put_meta(db, "journal_floor", str(upto))
