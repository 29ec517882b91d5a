"""Vectors in Milvus: an embedded Milvus Lite file by default, a Milvus server or cluster by URL.

For users who outgrow one process's RAM, or who run several services on one vector store. The
catalog stays the truth: this backend is a cache like the FAISS ones, rebuilt from the catalog by
``instrec reindex`` or whenever the library finds it unusable, and kept in step by the journal.

``index.uri`` names the store: a file path opens Milvus Lite (``<home>/index/milvus.db`` when
unset), which one process at a time may hold; ``http(s)://host:19530`` a Milvus standalone or
cluster, with ``index.milvus_index`` / ``index.milvus_params`` passed through to its index. Every
call reads with strong consistency: a removed id is unreachable at once, as the protocol demands.

What is saved in the library is only where the vectors are (a small JSON file): the store keeps
them itself. It may hold changes newer than that saved position; the library's journal replay is
idempotent (remove, then add what still exists), so replaying them again is harmless.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from instrec.config import IndexConfig
from instrec.errors import ConfigError
from instrec.extras import require_extra
from instrec.index.base import as_ids, as_vectors, register_index

KIND = "milvus"
ID_FIELD, VECTOR_FIELD = "id", "vector"
MAX_LIMIT = 16_384  # Milvus refuses a larger top-k
INSERT_BATCH = 2_000  # rows per insert or delete call: gRPC messages stay well under Milvus's size limit


def _client(uri: str) -> Any:
    require_extra("milvus", "index.backend=milvus")
    # gRPC's core prints to stderr when Milvus Lite's server turns down the client's keep-alive pings
    # (harmless: the client slows them down). Read once, when gRPC loads; a user's own value wins.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    local = "://" not in uri
    if local:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        # Milvus Lite serves gRPC inside this process and lacks a call the client tries first (then does
        # without): its server would log a traceback for it on every open. It is the only gRPC server here.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri)
    except MilvusException as error:
        if local:
            raise ConfigError(
                f"cannot open the Milvus Lite file {uri} ({error.message}); Milvus Lite serves one process at a "
                "time: stop the other one, or share a Milvus server (index.uri=http://host:19530)"
            ) from None
        raise ConfigError(f"cannot reach Milvus at {uri}: {error.message}") from None


class MilvusIndex:
    kind = KIND
    needs_training = False
    training_size = 0

    def __init__(self, client: Any, config: IndexConfig, dim: int):
        self.client = client
        self.config = config
        self.collection = config.milvus_collection
        self.dim = dim

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, dim: int, config: IndexConfig) -> "MilvusIndex":
        """A new, empty collection (an old one of the same name is dropped: the catalog rebuilds it)."""
        from pymilvus import DataType

        index = cls(_client(_uri(config)), config, dim)
        client = index.client
        if client.has_collection(index.collection):
            client.drop_collection(index.collection)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        params = client.prepare_index_params()
        params.add_index(field_name=VECTOR_FIELD, index_type=config.milvus_index, metric_type="IP", params=config.milvus_params)
        client.create_collection(index.collection, schema=schema, index_params=params, consistency_level="Strong")
        return index

    @classmethod
    def open(cls, path: Path, config: IndexConfig) -> "MilvusIndex":
        """The collection a saved pointer file names; OSError when it is gone (the library then rebuilds)."""
        saved = json.loads(path.read_text())
        if saved["uri"] != _uri(config) or saved["collection"] != config.milvus_collection:
            raise ValueError(f"saved for {saved['uri']} / {saved['collection']}, index.* now names another store")
        client = _client(saved["uri"])
        if not client.has_collection(saved["collection"]):
            raise OSError(f"collection {saved['collection']} is gone from {saved['uri']}")
        client.load_collection(saved["collection"])
        return cls(client, config, int(saved["dim"]))

    def save(self, path: Path) -> None:
        self.client.flush(self.collection)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"uri": _uri(self.config), "collection": self.collection, "dim": self.dim}))
        os.replace(tmp, path)

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def nbytes(self) -> int:
        """What the store holds for us (float32 vectors, before its own index overhead); not in our RAM."""
        return len(self) * self.dim * 4

    def train(self, vectors: np.ndarray) -> None:
        """Nothing to train here: Milvus builds its index itself."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dim)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        for start in range(0, len(ids), INSERT_BATCH):
            end = start + INSERT_BATCH
            rows = [{ID_FIELD: int(i), VECTOR_FIELD: v} for i, v in zip(ids[start:end], vectors[start:end])]
            self.client.insert(self.collection, rows)
        if len(ids):
            # Sealed now: an unsealed segment is scanned without the index, slow past a few thousand rows.
            self.client.flush(self.collection)

    def remove(self, ids: np.ndarray) -> int:
        ids = as_ids(ids)
        if not len(ids):
            return 0
        removed = 0
        for start in range(0, len(ids), INSERT_BATCH):  # a filter expression of bounded length
            batch = ids[start : start + INSERT_BATCH].tolist()
            # Milvus counts the ids it was given, present or not; the protocol counts those removed.
            present = self.client.query(self.collection, filter=f"{ID_FIELD} in {batch}", output_fields=[ID_FIELD])
            if present:
                self.client.delete(self.collection, ids=[row[ID_FIELD] for row in present])
            removed += len(present)
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = as_vectors(queries, self.dim)
        k = max(1, min(k, MAX_LIMIT))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        if not len(queries):
            return scores, found
        results = self.client.search(
            self.collection,
            data=list(queries),
            limit=k,
            output_fields=[ID_FIELD],
            search_params={"metric_type": "IP", "params": self.config.milvus_search_params},
        )
        for row, hits in enumerate(results):
            for column, hit in enumerate(hits):
                scores[row, column], found[row, column] = hit["distance"], hit[ID_FIELD]
        width = max((len(hits) for hits in results), default=0)
        return scores[:, : max(width, 1)], found[:, : max(width, 1)]

    def close(self) -> None:
        self.client.close()


def _uri(config: IndexConfig) -> str:
    if config.uri is None:
        raise ConfigError("index.backend=milvus needs index.uri (the library sets <home>/index/milvus.db when unset)")
    return config.uri


@register_index(KIND, MilvusIndex.open)
def create_milvus(dim: int, config: IndexConfig, expected_size: int = 0) -> MilvusIndex:
    return MilvusIndex.create(dim, config)
