"""Stage 3: nearest-neighbour search over gallery vectors, behind a small protocol."""

from instrec.index import flat, ivf, milvus  # noqa: F401  (registers the backends)
from instrec.index._faiss import set_threads
from instrec.index.base import VectorIndex, create_index, list_indexes, load_index, register_index

__all__ = ["VectorIndex", "create_index", "list_indexes", "load_index", "register_index", "set_threads"]
