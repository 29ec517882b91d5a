"""Large galleries: an inverted file of 4-bit PQ codes finds candidates, the stored vectors rank them.

Why this shape (``benchmarks/bench_index.py`` measures it): at 100K+ instances a query may touch
only a few MB, yet its answer and scores must match exact search, because the open-set threshold
compares raw cosines. PQ fast-scan codes are 32x smaller than the vectors, so a query can visit a
quarter of the cells -- enough even for vectors with no cluster structure, where a plain IVF needs
most of the gallery -- and the ``refine_factor * k`` best candidates are then re-scored exactly
from a float32 copy (float16 would halve its RAM, but FAISS decodes it ~4x slower per candidate). Codes of 4 dims each keep the true neighbour among the
candidates on descriptor-like data too (10 dims each lost it for ~5% of queries). Both parts are addressed by the catalog's vector ids, so
removal is true removal. The number of cells follows the gallery size; the library retrains the
index when the gallery has grown a lot (see ``Library``).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from instrec.config import IndexConfig
from instrec.index._faiss import FaissIndex, write_atomically
from instrec.index.base import as_ids, as_vectors, register_index

TRAINING_POINTS_PER_CELL = 40  # FAISS warns below 39
DIMS_PER_SUBQUANTIZER = 4  # 4-bit PQ: 1280-d -> 320 sub-quantizers, 160 bytes per vector
MIN_SUBQUANTIZERS = 8  # small dims still get a code that tells vectors apart
MIN_CANDIDATES = 64  # re-scored per query whatever k is: cheap, and covers coarse-code ties


def cells_for(size: int) -> int:
    """~2·sqrt(n) cells, a power of two between 16 and 65536."""
    target = 2 * math.sqrt(max(size, 1))
    return int(min(65536, max(16, 2 ** round(math.log2(target)))))


def subquantizers_for(dim: int) -> int:
    """The divisor of ``dim`` closest to ``dim / DIMS_PER_SUBQUANTIZER`` (PQ splits dims evenly)."""
    target = max(dim / DIMS_PER_SUBQUANTIZER, min(dim, MIN_SUBQUANTIZERS))
    return min((m for m in range(1, dim + 1) if dim % m == 0), key=lambda m: (abs(m - target), -m))


class IVFIndex:
    kind = "ivf"

    def __init__(self, coarse: faiss.IndexIVF, exact: faiss.Index, config: IndexConfig):
        self.coarse = FaissIndex(coarse)
        self.exact = FaissIndex(exact)
        self.dim = coarse.d
        self.refine_factor = config.refine_factor
        ivf = faiss.extract_index_ivf(coarse)
        ivf.nprobe = config.nprobe if config.nprobe > 0 else max(1, ivf.nlist // 4)

    def __len__(self) -> int:
        return len(self.exact)

    @property
    def nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.coarse.index).nprobe)

    @property
    def needs_training(self) -> bool:
        return self.coarse.needs_training

    @property
    def training_size(self) -> int:
        return faiss.extract_index_ivf(self.coarse.index).nlist * TRAINING_POINTS_PER_CELL

    def train(self, vectors: np.ndarray) -> None:
        self.coarse.train(vectors)

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
        _, candidates = self.coarse.search(queries, max(k * self.refine_factor, MIN_CANDIDATES))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        for row, (query, ids) in enumerate(zip(queries, candidates)):
            ids = as_ids(ids[ids >= 0])
            # einsum, not BLAS: a multi-threaded gemv costs ~15x more CPU on a busy machine
            exact = np.einsum("ij,j->i", self.exact.index.reconstruct_batch(ids), query)
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, :len(best)], found[row, :len(best)] = exact[best], ids[best]
        return scores, found

    def save(self, path: Path) -> None:
        write_atomically(self.coarse.index, _coarse_path(path))
        write_atomically(self.exact.index, path)  # written last: its presence means both are whole

    @property
    def nbytes(self) -> int:
        return self.coarse.nbytes + self.exact.nbytes


def _coarse_path(path: Path) -> Path:
    return path.with_name(path.name + ".coarse")


def _load(path: Path, config: IndexConfig) -> IVFIndex:
    return IVFIndex(faiss.read_index(str(_coarse_path(path))), faiss.read_index(str(path)), config)


@register_index("ivf", _load)
def create_ivf(dim: int, config: IndexConfig, expected_size: int = 0) -> IVFIndex:
    nlist = cells_for(expected_size)
    quantizer = faiss.IndexFlatIP(dim)
    coarse = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, subquantizers_for(dim), 4, faiss.METRIC_INNER_PRODUCT)
    coarse.own_fields = True
    quantizer.this.disown()
    coarse.cp.niter = 10
    coarse.cp.max_points_per_centroid = TRAINING_POINTS_PER_CELL * 2  # sample: trains in seconds
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    return IVFIndex(coarse, exact, config)
