"""The local-feature stage as one object: enrol images, shortlist, verify, fuse.

``home/`` holds ``features/`` (the :class:`FeatureStore`, the durable truth) and ``index/`` (a
snapshot of the :class:`LocalIndex`). The snapshot records how much of the store's log it covers;
on open, later store records are replayed into it, and a snapshot that does not fit (other
vocabulary, store compacted since) is rebuilt from the store, so a crash between the two never
leaves them disagreeing. Writes are not thread-safe: the caller serialises them against each
other and against queries.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from instrec.rerank.config import RerankConfig
from instrec.rerank.features import LocalFeatures, extract_local_features
from instrec.rerank.fuse import fuse
from instrec.rerank.index import LocalIndex
from instrec.rerank.store import FeatureStore
from instrec.rerank.verify import Verification, verify
from instrec.rerank.vocabulary import Vocabulary, load_vocabulary

Query = Image.Image | LocalFeatures
_REBUILD_BATCH = 512


class LocalReranker:
    def __init__(self, home: str | Path, config: RerankConfig = RerankConfig(),
                 vocabulary: Vocabulary | None = None):
        self.config = config
        self.home = Path(home)
        self.vocabulary = vocabulary if vocabulary is not None else load_vocabulary(config.vocabulary)
        self.store = FeatureStore(self.home / "features", meta={"features": config.feature_key()})
        self._lock = threading.Lock()
        self.index = self._open_index()

    # ------------------------------------------------------------------ lifecycle
    def _new_index(self) -> LocalIndex:
        c = self.config
        return LocalIndex(self.vocabulary, c.multi_assign, c.hamming_threshold, c.hamming_sigma)

    def _open_index(self) -> LocalIndex:
        directory = self.home / "index"
        if LocalIndex.exists(directory):
            try:
                index, meta = LocalIndex.load(directory, self.vocabulary)
            except (ValueError, KeyError, OSError):
                index, meta = None, {}
            c = self.config
            fits = (
                index is not None
                and meta.get("store_generation") == self.store.generation
                and int(meta.get("store_records", 1 << 62)) <= self.store.n_records()
                and (index.multi_assign, index.hamming_threshold, index.hamming_sigma)
                == (c.multi_assign, c.hamming_threshold, c.hamming_sigma)
            )
            if fits:
                touched = {i for _, i in self.store.records_since(int(meta["store_records"]))}
                self._reindex(index, sorted(touched))
                return index
        index = self._new_index()
        self._reindex(index, self.store.ids().tolist())
        return index

    def _reindex(self, index: LocalIndex, image_ids: Sequence[int]) -> None:
        """Make ``index`` agree with the store for these ids (present: re-add; absent: remove)."""
        index.remove(image_ids)
        present = [i for i in image_ids if i in self.store]
        for s in range(0, len(present), _REBUILD_BATCH):
            batch = present[s : s + _REBUILD_BATCH]
            index.add(batch, [self.store.get(i) for i in batch])

    def save(self) -> None:
        """Snapshot the index (the store is always durable); makes the next open fast."""
        with self._lock:
            self.index.save(self.home / "index", extra={
                "store_generation": self.store.generation,
                "store_records": self.store.n_records(),
            })

    def compact(self) -> None:
        """Reclaim the disk space of removed images, then snapshot the index."""
        with self._lock:
            self.store.compact()
        self.save()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "LocalReranker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ gallery
    def extract(self, image: Image.Image) -> LocalFeatures:
        c = self.config
        return extract_local_features(image, c.max_keypoints, c.max_side, c.contrast_threshold)

    def add(self, image_id: int, image: Image.Image) -> int:
        """Enrol one image; returns how many keypoints were kept."""
        feats = self.extract(image)
        self.add_features([image_id], [feats])
        return len(feats)

    def add_features(self, image_ids: Sequence[int] | np.ndarray, feats: Sequence[LocalFeatures]) -> None:
        """Enrol precomputed features (from :meth:`extract`, same config); replaces existing ids."""
        with self._lock:
            self.store.put(image_ids, feats)
            self.index.add(image_ids, feats)

    def remove(self, image_ids: Iterable[int]) -> None:
        ids = [int(i) for i in image_ids]
        with self._lock:
            self.store.delete(ids)
            self.index.remove(ids)

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.store

    # ------------------------------------------------------------------ queries
    def _features(self, query: Query) -> LocalFeatures:
        return query if isinstance(query, LocalFeatures) else self.extract(query)

    def shortlist(self, query: Query, k: int | None = None) -> list[tuple[int, float]]:
        """Gallery images with the most local evidence, best first (sub-linear in gallery size)."""
        return self.index.search(self._features(query), self.config.shortlist if k is None else k)

    def verification(self, query: Query, candidate_ids: Sequence[int],
                     groups: Sequence[Hashable] | None = None) -> Verification:
        """Ratio-test matches and RANSAC inliers per candidate (unknown ids get zeros).

        ``groups`` (e.g. each candidate's instance) stops two images of one instance from
        cancelling each other in the ratio test.
        """
        q = self._features(query)
        ids = [int(i) for i in candidate_ids]
        known = [j for j, i in enumerate(ids) if i in self.store]
        c = self.config
        result = verify(q, [self.store.get(ids[j]) for j in known], c.ratio, c.ransac_model,
                        c.ransac_threshold, c.ransac_iters, c.seed,
                        None if groups is None else [groups[j] for j in known])
        matches = np.zeros(len(ids), np.int64)
        inliers = np.zeros(len(ids), np.int64)
        matches[known], inliers[known] = result.matches, result.inliers
        return Verification(matches=matches, inliers=inliers)

    def verify(self, query: Query, candidate_ids: Sequence[int],
               groups: Sequence[Hashable] | None = None) -> dict[int, int]:
        """``{image_id: RANSAC inliers}`` for each candidate."""
        v = self.verification(query, candidate_ids, groups)
        return {int(i): int(n) for i, n in zip(candidate_ids, v.inliers)}

    def rerank(self, query: Query, global_scores: Mapping[int, float] | None = None,
               k: int | None = None, groups: Mapping[int, Hashable] | None = None,
               ) -> list[tuple[int, float]]:
        """Whole local stage: local shortlist merged with the global one, verified, fused.

        Candidates are the best ``k`` by local score plus the best ``k`` by global score; returns
        ``[(image_id, fused score in [0, 1])]``, best first.
        """
        k = self.config.shortlist if k is None else k
        q = self._features(query)
        local = dict(self.index.search(q, k))
        candidates = list(local)
        if global_scores:
            top_global = sorted(global_scores, key=lambda i: -global_scores[i])[:k]
            candidates += [int(i) for i in top_global if int(i) not in local]
        if not candidates:
            return []
        group_list = None if groups is None else [groups.get(i, ("image", i)) for i in candidates]
        inliers = self.verify(q, candidates, group_list)
        fused = fuse(
            None if global_scores is None else {i: global_scores.get(i, 0.0) for i in candidates},
            {i: local.get(i, 0.0) for i in candidates}, inliers, self.config,
        )
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    # ------------------------------------------------------------------ accounting
    @property
    def index_nbytes(self) -> int:
        """RAM of the local-evidence index (vocabulary excluded: it is shared and fixed)."""
        return self.index.nbytes

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk of the verification data (features store)."""
        return self.store.disk_bytes
