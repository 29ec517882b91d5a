"""Compact on-disk store of every gallery image's local features, read through a memory map.

Verification needs each candidate's keypoints and descriptors; keeping them here (132 bytes per
keypoint: uint8 SIFT + two uint16 coordinates in 1/16 pixel) means re-ranking never re-reads or
re-decodes images, and RAM holds only the pages of the candidates actually touched.

Layout (one generation ``G`` live at a time, named by the ``CURRENT`` file)::

    CURRENT            "G"           replaced atomically (write temp, fsync, rename)
    feat-G.dat         payloads      appended; each: n*4 bytes xy, then n*128 bytes descriptors
    feat-G.log         40-byte records, appended: put (id, offset, n, scale) or delete (id)

Crash safety: a put appends and fsyncs the payload *before* appending its log record, and every
record carries a CRC, so after a crash the log ends either before or after the record, never in a
half-written one (a torn tail record is dropped and truncated on open). Deletes only append a
tombstone; :meth:`compact` rewrites live data into generation G+1 and publishes it by replacing
``CURRENT``. One writer at a time (the caller serialises writes); readers may be many.
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from instrec.rerank.features import DESCRIPTOR_DIM, LocalFeatures

_RECORD = np.dtype(
    [("kind", "<u4"), ("n", "<u4"), ("id", "<i8"), ("offset", "<i8"), ("scale", "<f4"),
     ("data_crc", "<u4"), ("crc", "<u4"), ("pad", "<u4")]
)
_PUT, _DELETE = 1, 2
_XY_UNIT = 16.0  # coordinates stored in 1/16 pixel as uint16: up to 4095 px
_BYTES_PER_KEYPOINT = 4 + DESCRIPTOR_DIM
MAX_COORDINATE = 65535 / _XY_UNIT


def _record_crc(rec: np.ndarray) -> int:
    body = rec.copy()
    body["crc"] = 0
    return zlib.crc32(body.tobytes())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FeatureStore:
    """Image id -> :class:`LocalFeatures`, persisted under ``directory``."""

    def __init__(self, directory: str | Path, meta: dict | None = None):
        """Open (or create) a store. ``meta`` (e.g. the extraction settings) is recorded at
        creation; reopening with a different ``meta`` is refused, since the features would not
        be comparable."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        meta_path = self.directory / "meta.json"
        if meta_path.exists():
            self.meta = json.loads(meta_path.read_text())
            if meta is not None and meta != self.meta:
                raise ValueError(f"feature store {self.directory} was built with {self.meta}, not {meta}")
        else:
            self.meta = dict(meta or {})
            _write_atomic(meta_path, json.dumps(self.meta, sort_keys=True).encode())
        current = self.directory / "CURRENT"
        if not current.exists():
            _write_atomic(current, b"0")
        self.generation = int(current.read_text().strip())
        self._table: dict[int, tuple[int, int, float]] = {}  # id -> (offset, n, scale)
        self._map: mmap.mmap | None = None
        self._map_size = 0
        self._replay()

    # ------------------------------------------------------------------ files
    def _dat(self, gen: int | None = None) -> Path:
        return self.directory / f"feat-{self.generation if gen is None else gen:06d}.dat"

    def _log(self, gen: int | None = None) -> Path:
        return self.directory / f"feat-{self.generation if gen is None else gen:06d}.log"

    def _replay(self) -> None:
        dat, log = self._dat(), self._log()
        dat.touch(exist_ok=True)
        log.touch(exist_ok=True)
        raw = log.read_bytes()
        n_whole = len(raw) // _RECORD.itemsize
        records = np.frombuffer(raw[: n_whole * _RECORD.itemsize], dtype=_RECORD)
        dat_size = dat.stat().st_size
        good = 0
        for i in range(n_whole):
            rec = records[i : i + 1]
            r = rec[0]
            if _record_crc(rec) != int(r["crc"]):
                break
            if r["kind"] == _PUT:
                if int(r["offset"]) + int(r["n"]) * _BYTES_PER_KEYPOINT > dat_size:
                    break
                self._table[int(r["id"])] = (int(r["offset"]), int(r["n"]), float(r["scale"]))
            elif r["kind"] == _DELETE:
                self._table.pop(int(r["id"]), None)
            else:
                break
            good = i + 1
        if good * _RECORD.itemsize != len(raw):  # torn or corrupt tail: cut it so appends stay aligned
            with open(log, "r+b") as f:
                f.truncate(good * _RECORD.itemsize)
                os.fsync(f.fileno())

    def _append_records(self, records: np.ndarray) -> None:
        for i in range(len(records)):
            records[i]["crc"] = _record_crc(records[i : i + 1])
        with open(self._log(), "ab") as f:
            f.write(records.tobytes())
            f.flush()
            os.fsync(f.fileno())

    # ------------------------------------------------------------------ writes
    def put(self, image_ids: Sequence[int] | np.ndarray, feats: Sequence[LocalFeatures]) -> None:
        """Store (or replace) features of images; durable when this returns."""
        image_ids = [int(i) for i in np.asarray(image_ids, dtype=np.int64).reshape(-1)]
        if len(image_ids) != len(feats):
            raise ValueError(f"{len(image_ids)} ids for {len(feats)} feature sets")
        payloads = []
        for f in feats:
            if len(f) and (f.xy.min() < 0 or f.xy.max() >= MAX_COORDINATE):
                raise ValueError(f"keypoint coordinates must lie in [0, {MAX_COORDINATE:.0f}) pixels")
            xy = np.rint(np.asarray(f.xy, np.float64) * _XY_UNIT).astype("<u2")
            payloads.append(xy.tobytes() + np.ascontiguousarray(f.descriptors, np.uint8).tobytes())
        records = np.zeros(len(image_ids), dtype=_RECORD)
        with open(self._dat(), "ab") as out:
            offset = out.seek(0, os.SEEK_END)
            for i, (image_id, f, payload) in enumerate(zip(image_ids, feats, payloads)):
                records[i] = (_PUT, len(f), image_id, offset, f.scale, zlib.crc32(payload), 0, 0)
                out.write(payload)
                offset += len(payload)
            out.flush()
            os.fsync(out.fileno())
        self._append_records(records)
        for r in records:
            self._table[int(r["id"])] = (int(r["offset"]), int(r["n"]), float(r["scale"]))

    def delete(self, image_ids: Iterable[int]) -> None:
        """Forget images (unknown ids ignored); space is reclaimed by :meth:`compact`."""
        ids = [int(i) for i in image_ids if int(i) in self._table]
        if not ids:
            return
        records = np.zeros(len(ids), dtype=_RECORD)
        records["kind"] = _DELETE
        records["id"] = ids
        self._append_records(records)
        for i in ids:
            self._table.pop(i, None)

    def compact(self) -> None:
        """Rewrite live images into a new generation, publish it atomically, drop the old files."""
        old = self.generation
        new = old + 1
        ids = sorted(self._table)
        records = np.zeros(len(ids), dtype=_RECORD)
        with open(self._dat(new), "wb") as out:
            offset = 0
            for i, image_id in enumerate(ids):
                payload = self._payload(image_id)
                records[i] = (_PUT, self._table[image_id][1], image_id, offset,
                              self._table[image_id][2], zlib.crc32(payload), 0, 0)
                out.write(payload)
                offset += len(payload)
            out.flush()
            os.fsync(out.fileno())
        for i in range(len(records)):
            records[i]["crc"] = _record_crc(records[i : i + 1])
        _write_atomic(self._log(new), records.tobytes())
        _write_atomic(self.directory / "CURRENT", str(new).encode())  # the publish point
        self.close()
        self.generation = new
        self._table = {int(r["id"]): (int(r["offset"]), int(r["n"]), float(r["scale"])) for r in records}
        for path in (self._dat(old), self._log(old)):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reads
    def _buffer(self, end: int) -> mmap.mmap:
        if self._map is None or end > self._map_size:
            self.close()
            with open(self._dat(), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._map = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else None
                self._map_size = size
        if self._map is None or end > self._map_size:
            raise OSError(f"{self._dat()} is shorter than its log says")
        return self._map

    def _payload(self, image_id: int) -> bytes:
        offset, n, _ = self._table[image_id]
        end = offset + n * _BYTES_PER_KEYPOINT
        return bytes(self._buffer(end)[offset:end]) if n else b""

    def get(self, image_id: int) -> LocalFeatures:
        """Features of one image (descriptors are a zero-copy view of the memory map)."""
        if int(image_id) not in self._table:
            raise KeyError(image_id)
        offset, n, scale = self._table[int(image_id)]
        if n == 0:
            return LocalFeatures.empty()
        buf = self._buffer(offset + n * _BYTES_PER_KEYPOINT)
        xy = np.frombuffer(buf, "<u2", 2 * n, offset).reshape(n, 2).astype(np.float32) / _XY_UNIT
        desc = np.frombuffer(buf, np.uint8, n * DESCRIPTOR_DIM, offset + 4 * n).reshape(n, DESCRIPTOR_DIM)
        return LocalFeatures(xy, desc, scale)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, (int, np.integer)) and int(image_id) in self._table

    def __len__(self) -> int:
        return len(self._table)

    def ids(self) -> np.ndarray:
        return np.array(sorted(self._table), dtype=np.int64)

    def n_records(self) -> int:
        """Records in the current log: what an index snapshot has replayed up to."""
        return self._log().stat().st_size // _RECORD.itemsize

    def records_since(self, start: int) -> list[tuple[int, int]]:
        """``(kind, image_id)`` of log records from ``start`` on (kind: 1 put, 2 delete)."""
        raw = self._log().read_bytes()[start * _RECORD.itemsize :]
        recs = np.frombuffer(raw[: len(raw) // _RECORD.itemsize * _RECORD.itemsize], dtype=_RECORD)
        return [(int(r["kind"]), int(r["id"])) for r in recs]

    @property
    def disk_bytes(self) -> int:
        return self._dat().stat().st_size + self._log().stat().st_size

    @property
    def live_bytes(self) -> int:
        """Bytes of live payloads (what a compaction would keep)."""
        return sum(n for _, n, _ in self._table.values()) * _BYTES_PER_KEYPOINT + len(self._table) * _RECORD.itemsize

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a caller still holds a view into the map: let GC unmap it
                pass
        self._map = None
        self._map_size = 0
