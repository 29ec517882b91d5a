"""Back up a library home into one tar file, consistent while others use it, and restore it.

The catalog is copied with SQLite's online backup API in one step, i.e. inside one read
transaction: one point in time, even while another thread or process enrols. The originals it
references are then copied by content hash. Originals are written before the rows that reference
them and deleted after those rows, so every image of the copy has its file unless it was removed
while the files were being copied; then the catalog is copied again (files already in the archive
are not read again). An original still missing after that second copy, which still references it,
was never stored (a faces library with ``faces.keep_originals`` off): its image is backed up without
it, the manifest lists it, and the restored library recognises it as before but cannot re-embed it
or show it. The indexes are left out: they are a cache that the library rebuilds from the catalog
when it opens the restored home.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from instrec import __version__
from instrec.catalog import BlobStore
from instrec.errors import InstrecError, NoLibraryError
from instrec.library.library import CATALOG_FILE, IMAGES_DIR

MANIFEST = "instrec-backup.json"
FORMAT = 1
ATTEMPTS = 5  # catalog copies tried before giving up on originals that keep vanishing


@dataclass
class BackupReport:
    images: int  # image rows in the catalog
    originals: int  # distinct original files (images of equal content share one)
    bytes: int  # of the originals
    # Distinct originals the library never stored (faces.keep_originals off): their images are
    # recognised as before, but cannot be re-embedded or shown.
    without_originals: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def backup(home: str | Path, archive: str | Path) -> BackupReport:
    """Write ``home``'s catalog and originals to the tar file ``archive`` (replaced atomically)."""
    home, archive = Path(home), Path(archive)
    catalog = home / CATALOG_FILE
    if not catalog.is_file():
        raise NoLibraryError(f"no library at {home} (no {CATALOG_FILE} there)")
    blobs = BlobStore(home / IMAGES_DIR)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    copied: dict[str, int] = {}  # sha256 -> size
    try:
        with tarfile.open(partial, "w") as tar, tempfile.TemporaryDirectory() as scratch:
            snapshot = Path(scratch) / CATALOG_FILE
            looked_for: set[str] = set()  # originals missing at the previous look
            for _ in range(ATTEMPTS):
                images, hashes = _copy_catalog(catalog, snapshot)
                missing = {sha for sha in sorted(hashes - copied.keys()) if not _add_original(tar, blobs, sha, copied)}
                if missing <= looked_for:  # none, or referenced by a catalog copied after they were missed
                    break
                looked_for = missing
            else:
                raise InstrecError(
                    f"{len(missing)} originals the catalog of {home} references are missing under "
                    f"{blobs.root} (first: {min(missing)}): removed faster than they could be copied"
                )
            tar.add(snapshot, CATALOG_FILE)
            kept = hashes - missing
            report = BackupReport(images, len(kept), sum(copied[sha] for sha in kept), len(missing))
            manifest = {"format": FORMAT, "instrec": __version__, **report.to_dict(), "never_stored": sorted(missing)}
            _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return report


def _copy_catalog(source: Path, target: Path) -> tuple[int, set[str]]:
    """Copy the catalog at one point in time; its image count and the hashes of its originals."""
    target.unlink(missing_ok=True)
    with closing(sqlite3.connect(source, timeout=60.0)) as live, closing(sqlite3.connect(target)) as copy:
        live.backup(copy)  # all pages in one step: one read transaction
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
        images = copy.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        hashes = {row[0] for row in copy.execute("SELECT DISTINCT sha256 FROM images")}
    return int(images), hashes


def _add_original(tar: tarfile.TarFile, blobs: BlobStore, sha: str, copied: dict[str, int]) -> bool:
    """Add one original to the archive; False if it is gone."""
    try:
        handle = open(blobs.path(sha), "rb")  # once open, a concurrent delete cannot cut the read short
    except FileNotFoundError:
        return False
    with handle:
        info = tarfile.TarInfo(_original_name(sha))
        info.size = os.fstat(handle.fileno()).st_size
        tar.addfile(info, handle)
    copied[sha] = info.size
    return True


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _original_name(sha: str) -> str:
    return f"{IMAGES_DIR}/{sha[:2]}/{sha}"


def restore(archive: str | Path, home: str | Path) -> BackupReport:
    """Unpack a :func:`backup` archive into ``home``, which must be new or empty.

    The archive is unpacked beside ``home`` and moved into place only once every original matches
    its hash and every image of the catalog has its original, so a failed restore leaves nothing.
    """
    archive, home = Path(archive), Path(home)
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise InstrecError(f"{home} is not empty: restore into a new or empty folder")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=f".{home.name}.restoring-") as staging:
        target = Path(staging) / "home"
        try:
            with tarfile.open(archive) as tar:
                never_stored = _unpack(tar, target)
        except (OSError, tarfile.TarError) as error:
            raise InstrecError(f"cannot read backup {archive}: {error}") from error
        report = _verified(target, archive, never_stored)
        if home.exists():
            home.rmdir()  # empty, checked above
        os.replace(target, home)
    return report


def _unpack(tar: tarfile.TarFile, target: Path) -> set[str]:
    """Extract the catalog and the originals, each original checked against its name; the hashes of
    the originals the backed-up library never stored.

    Only the names a backup writes are accepted, so an archive cannot place files elsewhere.
    """
    blobs = BlobStore(target / IMAGES_DIR)
    manifest: object = None
    target.mkdir()
    for member in tar:
        data = _member_bytes(tar, member)
        if member.name == MANIFEST:
            try:
                manifest = json.loads(data)
            except ValueError:
                manifest = None
        elif member.name == CATALOG_FILE:
            (target / CATALOG_FILE).write_bytes(data)
        elif (sha := member.name.rpartition("/")[2]) and member.name == _original_name(sha):
            if hashlib.sha256(data).hexdigest() != sha:
                raise InstrecError(f"the archive's original {sha} does not match its hash: the archive is damaged")
            blobs.put(sha, data)
        else:
            raise InstrecError(f"not an instrec backup: unexpected entry {member.name!r}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not (target / CATALOG_FILE).is_file():
        raise InstrecError(f"not an instrec backup (format {FORMAT}): no manifest or no catalog")
    return set(manifest.get("never_stored", []))


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise InstrecError(f"not an instrec backup: {member.name!r} is not a file")
    with handle:
        return handle.read()


def _verified(target: Path, archive: Path, never_stored: set[str]) -> BackupReport:
    blobs = BlobStore(target / IMAGES_DIR)
    try:
        with closing(sqlite3.connect(target / CATALOG_FILE)) as db:
            images = int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
            hashes = {row[0] for row in db.execute("SELECT DISTINCT sha256 FROM images")}
    except sqlite3.DatabaseError as error:
        raise InstrecError(f"the catalog in {archive} is unreadable: {error}") from error
    kept = hashes - never_stored
    missing = [sha for sha in sorted(kept) if not blobs.path(sha).is_file()]
    if missing:
        raise InstrecError(f"{archive} lacks {len(missing)} originals its catalog references (first: {missing[0]})")
    return BackupReport(images, len(kept), sum(blobs.path(sha).stat().st_size for sha in kept), len(hashes & never_stored))
