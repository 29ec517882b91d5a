"""Inverted-file index: vectors bucketed by k-means cell; a query visits ``nprobe`` cells.

Chosen over HNSW as the large-gallery default because it supports true removal and builds fast;
the number of cells follows the gallery size, so the library retrains it when the gallery has grown
a lot (see ``IndexManager``).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss

from instrec.config import IndexConfig
from instrec.index._faiss import FaissIndex
from instrec.index.base import register_index

TRAINING_POINTS_PER_CELL = 40  # FAISS warns below 39


def cells_for(size: int) -> int:
    """~4·sqrt(n) cells, a power of two between 16 and 65536."""
    target = 4 * math.sqrt(max(size, 1))
    return int(min(65536, max(16, 2 ** round(math.log2(target)))))


class IVFIndex(FaissIndex):
    kind = "ivf"

    def __init__(self, index: faiss.Index, nprobe: int):
        super().__init__(index)
        faiss.extract_index_ivf(index).nprobe = nprobe

    @property
    def training_size(self) -> int:
        return faiss.extract_index_ivf(self.index).nlist * TRAINING_POINTS_PER_CELL


def _load(path: Path, config: IndexConfig) -> IVFIndex:
    return IVFIndex(faiss.read_index(str(path)), config.nprobe)


@register_index("ivf", _load)
def create_ivf(dim: int, config: IndexConfig, expected_size: int = 0) -> IVFIndex:
    nlist = cells_for(expected_size)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = TRAINING_POINTS_PER_CELL * 2  # sample: trains in seconds
    return IVFIndex(index, config.nprobe)
