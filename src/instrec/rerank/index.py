"""Sub-linear local-evidence index: an inverted file over visual words with Hamming embedding.

Each gallery keypoint costs one posting of 12 bytes in RAM (int32 document + uint64 signature),
grouped by visual word. A query descriptor visits only the postings of its ``multi_assign`` nearest
words, so the work per query grows with gallery size / vocabulary size, not with gallery size
times keypoints as exhaustive matching does. With a vocabulary of a few thousand words that is still
linear in the gallery, so a query visits at most ``max_postings`` postings: the lookups into the
shortest lists first (the rarest words, which carry the largest idf weight), the most frequent
words skipped once the budget is spent. Below the budget every posting is visited.

Scoring (close to Jegou et al.'s HE + burstiness handling): a posting within ``hamming_threshold``
bits of the query signature votes ``exp(-(h / sigma)^2) * idf(word)^2``; each query descriptor
votes at most once per gallery image (its best posting there), and an image's total is divided by
sqrt(its keypoint count x the query's) so images with many keypoints do not win by volume and an
identical image scores about 1.

Each :meth:`add` call sorts its postings into a new segment and merges it with the previous one
while that is not more than twice as large (a binary-counter LSM: O(log n) segments, each posting
re-sorted O(log n) times). Removals only mark documents dead; their postings are dropped when dead
ones reach a quarter of the total, or on :meth:`compact`. Searches never mutate the index; writes
must not run concurrently with anything (the caller serialises them).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from instrec.rerank.features import LocalFeatures
from instrec.rerank.vocabulary import Vocabulary

_INDEX_FILE = "local_index.npz"


class _Segment:
    """Postings sorted by word: CSR ``offsets`` (V+1), ``docs`` int32, ``sigs`` uint64."""

    __slots__ = ("offsets", "docs", "sigs")

    def __init__(self, words: np.ndarray, docs: np.ndarray, sigs: np.ndarray, n_words: int):
        order = np.argsort(words, kind="stable")
        self.offsets = np.searchsorted(words[order], np.arange(n_words + 1)).astype(np.int64)
        self.docs = np.ascontiguousarray(docs[order], dtype=np.int32)
        self.sigs = np.ascontiguousarray(sigs[order], dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.docs.nbytes + self.sigs.nbytes

    def words(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


class LocalIndex:
    def __init__(
        self,
        vocabulary: Vocabulary,
        multi_assign: int = 3,
        hamming_threshold: int = 24,
        hamming_sigma: float = 16.0,
        max_postings: int | None = None,
    ):
        self.vocabulary = vocabulary
        self.max_postings = max_postings  # per query; None: no limit. A search setting, not saved
        self.multi_assign = multi_assign
        self.hamming_threshold = hamming_threshold
        self.hamming_sigma = hamming_sigma
        self._hamming_weight = np.exp(-((np.arange(65) / hamming_sigma) ** 2))  # by distance in bits
        self._ids = np.zeros(0, np.int64)  # document -> image id
        self._alive = np.zeros(0, bool)
        self._nfeat = np.zeros(0, np.int32)
        self._doc_of: dict[int, int] = {}
        self._df = np.zeros(vocabulary.size, np.int64)  # documents per word (dead ones until compaction)
        self._segments: list[_Segment] = []
        self._dead_postings = 0
        self._postings = 0

    # ------------------------------------------------------------------ mutation
    def add(self, image_ids: np.ndarray | Sequence[int], feats: Sequence[LocalFeatures]) -> None:
        """Index images; an id already present is replaced."""
        image_ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        if len(image_ids) != len(feats):
            raise ValueError(f"{len(image_ids)} ids for {len(feats)} feature sets")
        if len(np.unique(image_ids)) != len(image_ids):
            raise ValueError("duplicate image ids in one add() call")
        self.remove(image_ids)
        first = len(self._ids)
        docs = np.arange(first, first + len(image_ids), dtype=np.int32)
        counts = np.array([len(f) for f in feats], np.int64)
        self._ids = np.concatenate([self._ids, image_ids])
        self._alive = np.concatenate([self._alive, np.ones(len(image_ids), bool)])
        self._nfeat = np.concatenate([self._nfeat, counts.astype(np.int32)])
        self._doc_of.update({int(i): int(d) for i, d in zip(image_ids, docs)})
        if counts.sum() == 0:
            return
        x = np.concatenate([f.rootsift() for f in feats if len(f)])
        words, sigs = self.vocabulary.encode(x, 1)
        words, sigs = words[:, 0], sigs[:, 0]
        doc_col = np.repeat(docs, counts).astype(np.int32)
        self._push(_Segment(words, doc_col, sigs, self.vocabulary.size))
        pairs = np.unique(words.astype(np.int64) * len(self._ids) + doc_col)
        self._df += np.bincount(pairs // len(self._ids), minlength=self.vocabulary.size)
        self._postings += len(words)

    def remove(self, image_ids: np.ndarray | Sequence[int]) -> None:
        """Forget images (unknown ids are ignored); their postings are never returned again."""
        for image_id in np.asarray(image_ids, dtype=np.int64).reshape(-1):
            doc = self._doc_of.pop(int(image_id), None)
            if doc is not None:
                self._alive[doc] = False
                self._dead_postings += int(self._nfeat[doc])
        if self._postings and self._dead_postings * 4 > self._postings:
            self.compact()

    def compact(self) -> None:
        """Drop postings of removed images and renumber documents densely (one segment)."""
        keep_docs = np.flatnonzero(self._alive)
        new_doc = np.full(len(self._ids), -1, np.int64)
        new_doc[keep_docs] = np.arange(len(keep_docs))
        parts = []
        for seg in self._segments:
            mask = self._alive[seg.docs]
            parts.append((seg.words()[mask], new_doc[seg.docs[mask]], seg.sigs[mask]))
        self._ids = self._ids[keep_docs]
        self._alive = np.ones(len(keep_docs), bool)
        self._nfeat = self._nfeat[keep_docs]
        self._doc_of = {int(i): d for d, i in enumerate(self._ids)}
        self._segments = []
        self._df = np.zeros(self.vocabulary.size, np.int64)
        self._postings = self._dead_postings = 0
        if parts:
            words = np.concatenate([p[0] for p in parts])
            docs = np.concatenate([p[1] for p in parts])
            sigs = np.concatenate([p[2] for p in parts])
            self._segments = [_Segment(words, docs, sigs, self.vocabulary.size)] if len(words) else []
            self._postings = len(words)
            if len(words):
                pairs = np.unique(words.astype(np.int64) * max(1, len(self._ids)) + docs)
                self._df = np.bincount(pairs // max(1, len(self._ids)), minlength=self.vocabulary.size)

    def _push(self, segment: _Segment) -> None:
        segments = self._segments + [segment]
        while len(segments) > 1 and len(segments[-2].docs) <= 2 * len(segments[-1].docs):
            b, a = segments.pop(), segments.pop()
            segments.append(
                _Segment(
                    np.concatenate([a.words(), b.words()]),
                    np.concatenate([a.docs, b.docs]),
                    np.concatenate([a.sigs, b.sigs]),
                    self.vocabulary.size,
                )
            )
        self._segments = segments

    # ------------------------------------------------------------------ query
    def __len__(self) -> int:
        return len(self._doc_of)

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._doc_of

    def idf(self) -> np.ndarray:
        n_docs = max(1, len(self._ids))
        return np.log((n_docs + 1) / (self._df + 1)).clip(min=0).astype(np.float32)

    def search(self, query: LocalFeatures, k: int = 100) -> list[tuple[int, float]]:
        """Top ``k`` gallery images by local evidence, best first: ``[(image_id, score), ...]``."""
        if len(query) == 0 or not self._doc_of or k <= 0:
            return []
        m = min(self.multi_assign, self.vocabulary.size)
        words, sigs = self.vocabulary.encode(query.rootsift(), m)
        words, sigs = words.ravel(), sigs.ravel()
        qdesc = np.repeat(np.arange(len(query), dtype=np.int64), m)
        idf2 = self.idf() ** 2
        # Normalised by all the query's words, so a budget only leaves votes out, never inflates them.
        self_score = len(query) * max(float(idf2[words[::m]].mean()), 1e-6)
        kept = self._within_budget(words)
        words, sigs, qdesc = words[kept], sigs[kept], qdesc[kept]
        q_all, d_all, w_all = [], [], []
        for seg in self._segments:
            start = seg.offsets[words]
            length = seg.offsets[words + 1] - start
            total = int(length.sum())
            if total == 0:
                continue
            which = np.repeat(np.arange(len(words)), length)
            pos = np.arange(total) - np.repeat(np.cumsum(length) - length - start, length)
            h = np.bitwise_count(seg.sigs[pos] ^ sigs[which])
            hit = np.flatnonzero(h <= self.hamming_threshold)
            which, docs, h = which[hit], seg.docs[pos[hit]], h[hit]
            live = self._alive[docs]
            which, docs, h = which[live], docs[live], h[live]
            q_all.append(qdesc[which])
            d_all.append(docs)
            w_all.append(self._hamming_weight[h] * idf2[words[which]])
        if not q_all:
            return []
        q = np.concatenate(q_all)
        d = np.concatenate(d_all).astype(np.int64)
        w = np.concatenate(w_all).astype(np.float32)
        if len(q) == 0:
            return []
        # Burstiness: each query descriptor counts once per image, with its best match there. One
        # sort of the (descriptor, image) keys and a max per run: 5x faster than sorting by weight too.
        key = q * len(self._ids) + d
        order = np.argsort(key)
        key = key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        best = np.maximum.reduceat(w[order], starts)
        scores: np.ndarray = np.bincount(d[order[starts]], weights=best, minlength=len(self._ids))  # float64 (weights)
        # Cosine-like normalisation: an image identical to the query scores ~1.
        scores *= np.sqrt(len(query) / np.maximum(self._nfeat, 1)) / self_score
        hit_docs = np.flatnonzero(scores > 0)
        top = hit_docs[np.lexsort((self._ids[hit_docs], -scores[hit_docs]))][:k]
        return [(int(self._ids[t]), float(scores[t])) for t in top]

    def _within_budget(self, words: np.ndarray) -> np.ndarray:
        """Indices of the word lookups a query makes: all of them, or the shortest lists that fit
        ``max_postings`` together."""
        everything = np.arange(len(words))
        if self.max_postings is None:
            return everything
        lengths = sum((seg.offsets[words + 1] - seg.offsets[words] for seg in self._segments), np.zeros(len(words), np.int64))
        if int(lengths.sum()) <= self.max_postings:
            return everything
        order = np.argsort(lengths, kind="stable")
        return np.sort(order[np.cumsum(lengths[order]) <= self.max_postings])

    # ------------------------------------------------------------------ persistence
    @property
    def nbytes(self) -> int:
        """RAM held by postings and document tables (the vocabulary is counted separately)."""
        tables = self._ids.nbytes + self._alive.nbytes + self._nfeat.nbytes + self._df.nbytes
        return sum(s.nbytes for s in self._segments) + tables + 64 * len(self._doc_of)

    def save(self, directory: str | Path, extra: dict[str, int | str] | None = None) -> None:
        """Write one file atomically (temp file + rename): a crash leaves the old or the new."""
        self.compact()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        seg = (
            self._segments[0]
            if self._segments
            else _Segment(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint64), self.vocabulary.size)
        )
        meta = {
            "vocabulary": self.vocabulary.digest,
            "multi_assign": self.multi_assign,
            "hamming_threshold": self.hamming_threshold,
            "hamming_sigma": self.hamming_sigma,
            **(extra or {}),
        }
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    ids=self._ids,
                    nfeat=self._nfeat,
                    offsets=seg.offsets,
                    docs=seg.docs,
                    sigs=seg.sigs,
                    df=self._df,  # counting it again from the postings is most of the time a load takes
                    meta=np.array(json.dumps(meta)),
                )
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / _INDEX_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        return (Path(directory) / _INDEX_FILE).exists()

    @classmethod
    def load(cls, directory: str | Path, vocabulary: Vocabulary) -> tuple["LocalIndex", dict]:
        """Read what :meth:`save` wrote; refuses an index built with another vocabulary."""
        with np.load(Path(directory) / _INDEX_FILE) as z:
            meta = json.loads(str(z["meta"]))
            if meta["vocabulary"] != vocabulary.digest:
                raise ValueError("local index was built with another vocabulary; rebuild it")
            index = cls(vocabulary, int(meta["multi_assign"]), int(meta["hamming_threshold"]), float(meta["hamming_sigma"]))
            index._ids = z["ids"].astype(np.int64)
            index._nfeat = z["nfeat"].astype(np.int32)
            index._alive = np.ones(len(index._ids), bool)
            index._doc_of = {int(i): d for d, i in enumerate(index._ids)}
            seg = _Segment.__new__(_Segment)
            seg.offsets, seg.docs, seg.sigs = z["offsets"], z["docs"], z["sigs"]
            if len(seg.docs):
                index._segments = [seg]
                index._postings = len(seg.docs)
                if "df" in z.files:
                    index._df = z["df"].astype(np.int64)
                else:  # saved before the counts were stored
                    pairs = np.unique(seg.words().astype(np.int64) * len(index._ids) + seg.docs)
                    index._df = np.bincount(pairs // len(index._ids), minlength=vocabulary.size)
        return index, meta
