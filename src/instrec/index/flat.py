"""Exact search: every query row is compared to every vector. Best for small galleries
(up to ``index.auto_threshold`` vectors)."""

from __future__ import annotations

from pathlib import Path

import faiss

from instrec.config import IndexConfig
from instrec.index._faiss import FaissIndex
from instrec.index.base import register_index


class FlatIndex(FaissIndex):
    kind = "flat"


def _load(path: Path, config: IndexConfig) -> FlatIndex:
    return FlatIndex(faiss.read_index(str(path)))


@register_index("flat", _load)
def create_flat(dim: int, config: IndexConfig, expected_size: int = 0) -> FlatIndex:
    return FlatIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))
