"""Large galleries: an inverted file of 4-bit PQ codes finds candidates, the stored vectors rank them.

Why this shape (``benchmarks/bench_index.py`` measures it): at 100K+ instances a query may touch
only a few MB, yet its answer and scores must match exact search, because the open-set threshold
compares raw cosines. The candidate stage works in a reduced space: the vectors' top
``CODE_DIMS`` principal directions (randomly rotated so each sub-quantizer gets an even share
of the variance), where the ~sqrt(n) cells are drawn and the 4-bit PQ fast-scan codes (2 dims
each) are taken; on 1280-d descriptors that is 64 bytes a vector, 80x smaller than the vector, so a
query can visit 5/16 of the cells -- enough for descriptor-like vectors, whose genuine neighbours
often sit a few cells away, and for vectors with no structure at all -- and the
``REFINE_FACTOR * k`` best candidates are then re-scored exactly from a float32 copy of the full
vectors (float16 would halve its RAM, but FAISS decodes it ~4x slower per candidate). Scanning
codes is most of a query's time, and fewer, larger cells scan faster per code than 2*sqrt(n) at
the same recall; more, smaller cells (8*sqrt(n), found by an HNSW coarse quantizer, with IP or L2
cells) need more of the codes scanned for the same recall, and a smaller code space (128 dims, or
4 dims per sub-quantizer) loses genuine neighbours among a million impostors at any share of cells.
The projection is not centred: inner products must stay inner products, and
subtracting the mean gives each vector its own offset (benchmark's descriptor-like vectors:
recall@1 0.92 instead of 0.99). Both parts are addressed by the catalog's vector ids, so removal is
true removal. The number of cells follows the gallery size; the library
retrains the index when the gallery has grown a lot (see ``Library``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from instrec.config import IndexConfig
from instrec.index._faiss import FaissIndex, write_atomically
from instrec.index.base import as_ids, as_vectors, register_index

TRAINING_POINTS_PER_CELL = 40  # FAISS warns below 39
DIMS_PER_SUBQUANTIZER = 2  # 4-bit PQ: 256 code dims -> 128 sub-quantizers, 64 bytes per vector
MIN_SUBQUANTIZERS = 8  # small dims still get a code that tells vectors apart
PROBED_SIXTEENTHS = 5  # default nprobe: 5/16 of the cells
CODE_DIMS = 256  # cells and PQ codes use the top this-many principal directions
REFINE_FACTOR = 2  # k * this candidates from the PQ codes are re-scored exactly
MIN_CANDIDATES = 64  # re-scored per query whatever k is: cheap, and covers coarse-code ties
# FAISS fast-scan kernels: by default a search runs its queries in parallel, so one query runs on one
# thread; this one splits each query's cells among the threads instead (same results), and collects
# candidates in a reservoir (MIN_CANDIDATES > 20, where FAISS's own choice turns to one too).
ACROSS_CELLS = 15
BY_QUERY = 0  # FAISS's own choice: for batches of at least as many queries as threads


def cells_for(size: int) -> int:
    """~sqrt(n) cells, a power of two between 16 and 65536 (fewer, larger cells scan faster per code)."""
    target = math.sqrt(max(size, 1))
    return int(min(65536, max(16, 2 ** round(math.log2(target)))))


def subquantizers_for(dim: int) -> int:
    """The divisor of ``dim`` closest to ``dim / DIMS_PER_SUBQUANTIZER`` (PQ splits dims evenly)."""
    target = max(dim / DIMS_PER_SUBQUANTIZER, min(dim, MIN_SUBQUANTIZERS))
    return min((m for m in range(1, dim + 1) if dim % m == 0), key=lambda m: (abs(m - target), -m))


class IVFIndex:
    kind = "ivf"

    def __init__(self, coarse: faiss.Index, exact: faiss.Index, config: IndexConfig):
        self.coarse = FaissIndex(coarse)
        self.exact = FaissIndex(exact)
        self.dim = coarse.d
        # the fast-scan class itself (its ``implem``), which faiss's stubs type as a plain Index
        ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(coarse))
        ivf.nprobe = config.nprobe if config.nprobe > 0 else max(1, ivf.nlist * PROBED_SIXTEENTHS // 16)
        self._ivf = ivf

    def __len__(self) -> int:
        return len(self.exact)

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe)

    @property
    def needs_training(self) -> bool:
        return self.coarse.needs_training

    @property
    def training_size(self) -> int:
        return self._ivf.nlist * TRAINING_POINTS_PER_CELL

    def train(self, vectors: np.ndarray) -> None:
        index = self.coarse.index
        if not isinstance(index, faiss.IndexPreTransform):
            self.coarse.train(vectors)
            return
        vectors = as_vectors(vectors, self.dim)
        # faiss's stubs type the SWIG vectors as lists and downcasts as the base class:
        pca = faiss.downcast_VectorTransform(index.chain.at(0))  # type: ignore[attr-defined]
        sample = vectors
        if len(sample) <= pca.d_out:  # too few vectors to find that many directions: the rest are random
            noise = np.random.default_rng(0).standard_normal((pca.d_out + 1 - len(sample), self.dim))
            sample = np.vstack([sample, 1e-3 * noise.astype(np.float32)])
        pca.train(sample)
        # no centring: the projection keeps inner products (a centred one adds -mean.x per vector)
        faiss.copy_array_to_vector(np.zeros(pca.d_in, np.float32), pca.mean)  # type: ignore[attr-defined]
        faiss.copy_array_to_vector(np.zeros(pca.d_out, np.float32), pca.b)  # type: ignore[attr-defined]
        faiss.extract_index_ivf(index).train(pca.apply(vectors))
        index.is_trained = True

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.coarse.add(ids, vectors)
        self.exact.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        self.coarse.remove(ids)
        return self.exact.remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = as_vectors(queries, self.dim)
        if not len(self):
            return self.exact.search(queries, k)
        k = max(1, min(k, len(self)))
        # set per call: concurrent searches may race on it, harmlessly (both kernels give the same results)
        self._ivf.implem = ACROSS_CELLS if len(queries) < max(2, faiss.omp_get_max_threads()) else BY_QUERY
        _, candidates = self.coarse.search(queries, max(k * REFINE_FACTOR, MIN_CANDIDATES))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        for row, (query, ids) in enumerate(zip(queries, candidates)):
            ids = as_ids(ids[ids >= 0])
            # einsum, not BLAS: a multi-threaded gemv costs ~15x more CPU on a busy machine
            exact = np.einsum("ij,j->i", self.exact.index.reconstruct_batch(ids), query)
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], found[row, : len(best)] = exact[best], ids[best]
        return scores, found

    def save(self, path: Path) -> None:
        write_atomically(self.coarse.index, _coarse_path(path))
        write_atomically(self.exact.index, path)  # written last: its presence means both are whole

    @property
    def nbytes(self) -> int:
        return self.coarse.nbytes + self.exact.nbytes

    def close(self) -> None:
        """Nothing outside this process to let go of."""


def _coarse_path(path: Path) -> Path:
    return path.with_name(path.name + ".coarse")


def _load(path: Path, config: IndexConfig) -> IVFIndex:
    return IVFIndex(faiss.read_index(str(_coarse_path(path))), faiss.read_index(str(path)), config)


@register_index("ivf", _load)
def create_ivf(dim: int, config: IndexConfig, expected_size: int = 0) -> IVFIndex:
    nlist = cells_for(expected_size)
    code_dim = min(CODE_DIMS, dim)
    quantizer = faiss.IndexFlatIP(code_dim)
    ivf = faiss.IndexIVFPQFastScan(quantizer, code_dim, nlist, subquantizers_for(code_dim), 4, faiss.METRIC_INNER_PRODUCT)
    ivf.own_fields = True
    quantizer.this.disown()  # type: ignore[attr-defined]  # SWIG's proxy handle: not in faiss's stubs
    ivf.cp.niter = 10
    ivf.cp.max_points_per_centroid = TRAINING_POINTS_PER_CELL * 2  # sample: trains in seconds
    coarse: faiss.Index = ivf
    if code_dim < dim:
        pca = faiss.PCAMatrix(dim, code_dim, 0, True)  # top directions, then a random rotation
        coarse = faiss.IndexPreTransform(pca, ivf)
        coarse.own_fields = True
        pca.this.disown()  # type: ignore[attr-defined]
        ivf.this.disown()  # type: ignore[attr-defined]
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    return IVFIndex(coarse, exact, config)
