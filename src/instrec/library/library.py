"""The library: one home directory holding the catalog, the original images and the ANN index.

The catalog (a SQLite file in the home, or a shared PostgreSQL database) is the truth; the index
(and, when re-ranking is on, the local-feature index) is a cache kept in step with it by replaying
the catalog's journal. That single mechanism covers four cases: opening after a crash (the saved
index is older than the catalog), other processes enrolling into the same home, other homes (other
machines) on the same PostgreSQL catalog, and this process's own writes. Many threads may search at once;
index mutation takes the write side of a lock.
"""

from __future__ import annotations

import json
import logging
import itertools
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from instrec.catalog import BlobStore, Catalog
from instrec.catalog.blobs import Originals
from instrec.config import IndexConfig
from instrec.errors import DescriptorMismatchError
from instrec.index import VectorIndex, create_index, load_index
from instrec.library.tables import OwnerTable, ReadWriteLock, SearchHits
from instrec.rerank import LocalFeatures, LocalIndex, LocalVerifier

log = logging.getLogger(__name__)

REGROW_FACTOR = 4  # an IVF index is retrained when the gallery has grown this much since training
COMPACT_JOURNAL_AFTER = 200_000  # journal rows kept before saving the index compacts them
IVF_MIN_VECTORS = 1000  # an IVF cannot train its cells on fewer; exact search is instant at that size
CATALOG_FILE = "catalog.sqlite"  # the truth; with the originals under IMAGES_DIR it is all a backup needs
IMAGES_DIR = "images"
MILVUS_LITE_FILE = "milvus.db"  # index.backend=milvus with no index.uri: an embedded store in the home


class Library:
    def __init__(
        self,
        home: Path,
        *,
        dim: int,
        descriptor: str,
        descriptor_info: dict[str, Any],
        index: IndexConfig,
        local: LocalVerifier | None = None,
        catalog_url: str | None = None,
        catalog_schema: str | None = None,
    ):
        """``catalog_url``: a ``postgresql://`` catalog shared with other homes, in ``catalog_schema`` of
        that database (None: the default one); None = the home's SQLite file."""
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.descriptor = descriptor
        if index.backend == "milvus" and index.uri is None:
            index = index.model_copy(update={"uri": str(self.home / "index" / MILVUS_LITE_FILE)})
        self.index_config = index
        self.catalog = Catalog(catalog_url, catalog_schema) if catalog_url else Catalog(self.home / CATALOG_FILE)
        self.blobs: Originals = self.catalog.originals or BlobStore(self.home / IMAGES_DIR)
        self._claim_descriptor(descriptor_info)
        self.verifier = local
        if local is not None:
            self._claim_local_features(local.feature_key)
        self._local: LocalIndex | None = None
        self._lock = ReadWriteLock()
        self._sync_mutex = threading.Lock()
        self._index: VectorIndex
        self._owner = OwnerTable()
        self._seq = 0
        self._built_for = 0
        self._saved_seq = -1
        # Saved index files are shared by every process using this home: one saves or loads at a time,
        # so nobody deletes a file another is writing or about to read.
        (self.home / "index").mkdir(exist_ok=True)
        self._files_lock = FileLock(self.home / "index" / ".lock")
        self._open_index()

    # -- descriptor guard ----------------------------------------------------------------------
    def _claim_descriptor(self, info: dict[str, Any]) -> None:
        stored = self.catalog.get_meta("descriptor")
        if stored is None:
            self.catalog.set_meta("descriptor", self.descriptor)
            self.catalog.set_meta("descriptor_info", json.dumps(info, sort_keys=True))
            self.catalog.set_meta("dim", str(self.dim))
        elif stored != self.descriptor:
            raise DescriptorMismatchError(
                f"{self.home} was built with descriptor {stored} "
                f"({self.catalog.get_meta('descriptor_info')}), not {self.descriptor} ({json.dumps(info, sort_keys=True)}). "
                "Open it with the settings it was built with, or enrol into a new --home with the new ones."
            )

    def _claim_local_features(self, key: str) -> None:
        stored = self.catalog.get_meta("local_features")
        if stored is None:
            self.catalog.set_meta("local_features", key)
        elif stored != key:
            raise DescriptorMismatchError(
                f"{self.home} stores local features made with {stored}, not {key}. Open it with the "
                "rerank.* settings it was built with, or enrol into a new --home."
            )

    # -- index lifecycle -----------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.home / "index" / "state.json"

    def _open_index(self) -> None:
        with self._lock.write():
            with self._files_lock:
                loaded = self._load_saved_index()
            if not loaded:
                self._rebuild()
            self._sync_locked()

    def _load_saved_index(self) -> bool:
        """Load the saved index + owner map; False if there is none usable (then we rebuild)."""
        state = self._saved_state()
        if state is None or state["seq"] < self.catalog.journal.floor():
            return False
        if state["kind"] != self._choose_kind(self.catalog.stats()["vectors"]):
            return False  # index.backend now asks for another kind
        try:
            index = load_index(state["kind"], self.home / "index" / state["file"], self.index_config)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            log.warning("saved index unusable (%s); rebuilding from the catalog", error)
            return False
        self._index, self._seq, self._built_for = index, int(state["seq"]), int(state["built_for"])
        self._saved_seq = self._seq
        if self.verifier is not None and not self._load_saved_local(self.verifier):
            self._rebuild_local(self.verifier)
        # Owners come from the catalog as it is now; replaying the journal from the saved position
        # then brings the index forward, and owners of vectors added meanwhile are already known.
        self._owner = OwnerTable.of(self.catalog.vectors.owners())
        return True

    def _choose_kind(self, size: int) -> str:
        backend = self.index_config.backend
        if backend == "auto":
            backend = "flat" if size < self.index_config.auto_threshold else "ivf"
        return "flat" if backend == "ivf" and size < IVF_MIN_VECTORS else backend

    def _load_saved_local(self, verifier: LocalVerifier) -> bool:
        if not LocalIndex.exists(self._local_dir):
            return False
        try:
            index, meta = verifier.load_index(self._local_dir)
        except (OSError, ValueError, KeyError) as error:
            log.warning("saved local-feature index unusable (%s); rebuilding from the catalog", error)
            return False
        if meta.get("seq") != self._seq:
            return False
        self._local = index
        return True

    @property
    def _local_dir(self) -> Path:
        return self.home / "index" / "local"

    def _rebuild(self) -> None:
        """Build the indexes from the catalog (the source of truth), as of its journal head now.

        Rows written after the head was read are picked up again by the next replay, which is
        idempotent (remove-then-add), so nothing is missed or doubled.
        """
        head = self.catalog.journal.head()
        self._rebuild_vectors()
        if self.verifier is not None:
            self._rebuild_local(self.verifier)
        self._seq = head

    def _rebuild_local(self, verifier: LocalVerifier) -> None:
        local = verifier.new_index()
        for pks, blobs in self.catalog.features.iterate():
            local.add(pks, [LocalFeatures.unpack(b) for b in blobs])
        self._local = local
        log.info("built local-feature index over %d images", len(local))

    def _rebuild_vectors(self) -> None:
        size = self.catalog.stats()["vectors"]
        kind = self._choose_kind(size)
        index = create_index(kind, self.dim, self.index_config, size)
        if index.needs_training:
            index.train(self.catalog.vectors.sample(index.training_size, self.dim))
        owners = OwnerTable()
        for ids, instance_pks, vectors in self.catalog.vectors.iterate(self.dim):
            index.add(ids, vectors)
            owners.set(ids, instance_pks)
        self._index, self._owner, self._built_for = index, owners, size
        log.info("built %s index over %d vectors", kind, len(index))

    # -- removal -------------------------------------------------------------------------------
    def remove_instance(self, instance_id: str, *, wipe: bool = False) -> None:
        """Remove an instance and the originals no other one shares; ``wipe``: also leave none of its
        bytes in any file of the home (the index saved, the catalog's log emptied; too costly per
        removal for a large objects library, what a faces library owes the person). A PostgreSQL
        catalog is vacuumed; the server's own logs and backups are its administrator's."""
        self._removed(self.catalog.remove_instance(instance_id), wipe)

    def remove_image(self, image_id: int, *, wipe: bool = False) -> None:
        self._removed([self.catalog.remove_image(image_id)], wipe)

    def _removed(self, hashes: list[str], wipe: bool) -> None:
        for sha in set(hashes):
            if not self.catalog.sha_in_use(sha):
                self.blobs.delete(sha)
        self.sync()
        if wipe:
            self.save()
            self.catalog.erase_removed()

    def reindex(self) -> dict[str, Any]:
        """Rebuild the indexes from the catalog now, in the kind ``index.*`` asks for, and save them: after
        a change of backend, or when the vector store is suspected to have drifted from the catalog."""
        with self._lock.write():
            self._index.close()
            self._rebuild()
        self._saved_seq = -1  # saved even if the journal has not moved since the last save
        self.save()
        return self.index_info()

    def sync(self) -> None:
        """Apply catalog changes made since our last look (by us or by another process)."""
        if self.catalog.journal.head() == self._seq:
            return
        with self._sync_mutex, self._lock.write():
            self._sync_locked()

    def _sync_locked(self) -> None:
        entries = self.catalog.journal.since(self._seq)
        if self._seq < self.catalog.journal.floor():  # compacted past us (read after: no gap unseen)
            self._rebuild()
            entries = self.catalog.journal.since(self._seq)
        if not entries:
            return
        if len(entries) > max(len(self._index), 10_000):
            self._rebuild()  # a bulk load: building once beats replaying then rebuilding
            return
        for (kind, op), run in itertools.groupby(entries, key=lambda e: (e[2], e[1])):
            pks = [e[3] for e in run]
            if kind == "vector" and op == "add":
                self._flush_adds(pks)
            elif kind == "vector":
                self._index.remove(np.asarray(pks, np.int64))
                self._owner.clear(np.asarray(pks, np.int64))
            elif self._local is not None and op == "add":
                found = self.catalog.features.of_images(pks)
                self._local.add(list(found), [LocalFeatures.unpack(data) for _, data in found.values()])
            elif self._local is not None:
                self._local.remove(pks)
        self._seq = entries[-1][0]
        if self._needs_regrow():
            self._rebuild_vectors()

    def _flush_adds(self, vector_ids: list[int]) -> None:
        """Add vectors that still exist; remove-then-add keeps a replay idempotent."""
        if not vector_ids:
            return
        ids, owners, vectors = self.catalog.vectors.by_pk(vector_ids, self.dim)
        self._index.remove(ids)
        self._index.add(ids, vectors)
        self._owner.set(ids, owners)

    def _needs_regrow(self) -> bool:
        size = len(self._index)
        if self._index.kind != self._choose_kind(size):
            return True
        return self._index.kind == "ivf" and size > REGROW_FACTOR * max(self._built_for, 1)

    def save(self) -> None:
        """Persist the indexes so the next open does not rebuild; safe against crashes at any point.

        The local index and state.json each record the journal position they hold; a crash between
        the two writes leaves them disagreeing, which the next open detects and repairs by
        rebuilding the local index from the catalog. Another process that saved a newer position
        meanwhile is left alone.
        """
        directory = self.home / "index"
        with self._lock.write(), self._files_lock:  # saving compacts the local index: no searches
            if self._saved_seq == self._seq:
                return
            current = self._saved_state()
            if current is None or current["seq"] < self._seq or current["kind"] != self._index.kind:
                if self._local is not None:
                    self._local.save(self._local_dir, extra={"seq": self._seq})
                current = {
                    "kind": self._index.kind,
                    "file": f"{self._index.kind}-{self._seq}.faiss",
                    "seq": self._seq,
                    "dim": self.dim,
                    "descriptor": self.descriptor,
                    "built_for": self._built_for,
                    "catalog": self.catalog.identity,
                }
                self._index.save(directory / current["file"])
                tmp = self._state_path.with_name(f".state.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(current))
                os.replace(tmp, self._state_path)
            self._saved_seq = self._seq
            name = current["file"]
            for old in directory.glob("*.faiss*"):  # an index may keep side files named <file>.<part>
                if old.name != name and not old.name.startswith(name + "."):
                    old.unlink(missing_ok=True)
        if self._seq - self.catalog.journal.floor() > COMPACT_JOURNAL_AFTER:
            self.catalog.journal.compact(self._seq)

    def _saved_state(self) -> dict[str, Any] | None:
        """The state another process (or we) saved, if it describes this library's vectors."""
        if not self._state_path.exists():
            return None
        try:
            state = json.loads(self._state_path.read_text())
            missing = {"kind", "file", "seq", "built_for", "descriptor", "dim"} - state.keys()
            if missing:
                raise KeyError(f"no {sorted(missing)}")
            if state["descriptor"] != self.descriptor or state["dim"] != self.dim:
                return None  # made for another descriptor: not an error
            if state.get("catalog", self.catalog.identity) != self.catalog.identity:
                return None  # made from a catalog since deleted (a collection made again): not an error
            if not (self.home / "index" / state["file"]).exists():
                raise OSError(f"{state['file']} is missing")
            return state
        except (OSError, ValueError, AttributeError, KeyError) as error:  # AttributeError: JSON but no object
            log.warning("ignoring the unusable saved index state (%s)", error)
            return None

    # -- search --------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> list[SearchHits]:
        self.sync()
        with self._lock.read():
            scores, ids = self._index.search(queries, k)
            owners = self._owner
            hits = []
            for row_scores, row_ids in zip(scores, ids):
                keep = row_ids >= 0
                row_ids = row_ids[keep]
                hits.append(SearchHits(scores=row_scores[keep], vector_ids=row_ids, instance_pks=owners(row_ids)))
        return hits

    def local_search(self, features: list[LocalFeatures], k: int) -> list[list[tuple[int, float]]]:
        """Per query, the ``k`` gallery images with most local evidence: ``[(image pk, score)]``."""
        if self._local is None:
            return [[] for _ in features]
        self.sync()
        with self._lock.read():
            return [self._local.search(f, k) for f in features]

    def index_info(self) -> dict[str, Any]:
        self.sync()
        with self._lock.read():
            info = {"kind": self._index.kind, "vectors": len(self._index), "bytes": self._index.nbytes, "journal_seq": self._seq}
            if self._local is not None and self.verifier is not None:
                info["local"] = {"images": len(self._local), "bytes": self._local.nbytes, "features": self.verifier.feature_key}
            return info

    def close(self) -> None:
        if self.catalog.exists():  # else its collection was deleted meanwhile: nothing left to save for
            self.save()
        self._index.close()
        self.catalog.close()
