import subprocess
import sys

import faiss
import numpy as np
import pytest

from instrec.config import IndexConfig
from instrec.index.ivf import CODE_DIMS, PROBED_SIXTEENTHS
from instrec.errors import ConfigError
from instrec.index import create_index, list_indexes, load_index, register_index


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def config(tmp_path):
    return IndexConfig(nprobe=64, uri=str(tmp_path / "milvus" / "vectors.db"))  # uri: where Milvus Lite keeps them


@pytest.fixture(params=list_indexes())
def filled(request, config):
    rng = np.random.default_rng(0)
    n, d = 4000, 32
    vectors = unit(rng, n, d)
    ids = np.arange(n, dtype=np.int64) * 7 + 3  # ids are ours, not positions
    index = create_index(request.param, d, config, n)
    if index.needs_training:
        index.train(vectors)
    index.add(ids, vectors)
    yield index, ids, vectors
    index.close()


def test_every_backend_finds_near_duplicates(filled):
    index, ids, vectors = filled
    rng = np.random.default_rng(1)
    queries = vectors[:200] + 0.02 * rng.standard_normal(vectors[:200].shape).astype(np.float32)
    scores, found = index.search(queries, 5)
    assert found.shape == (200, 5)
    assert (found[:, 0] == ids[:200]).mean() >= 0.97
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "results must be best first"


def test_removed_ids_never_come_back(filled):
    index, ids, vectors = filled
    assert index.remove(ids[:50]) == 50
    assert len(index) == len(ids) - 50
    _, found = index.search(vectors[:50], 10)
    assert not np.isin(found, ids[:50]).any()
    assert index.remove(ids[:50]) == 0  # idempotent
    assert index.remove(ids[:2600]) == 2550  # a bulk removal, present and absent ids mixed
    assert len(index) == len(ids) - 2600


def test_save_and_load_round_trip(filled, config, tmp_path):
    index, ids, vectors = filled
    path = tmp_path / "index.faiss"
    index.save(path)
    again = load_index(index.kind, path, config)
    assert len(again) == len(index) and again.kind == index.kind
    a = index.search(vectors[:20], 3)
    b = again.search(vectors[:20], 3)
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("kind", list_indexes())
def test_empty_index_searches_to_nothing(kind, config):
    index = create_index(kind, 8, config)
    scores, found = index.search(np.ones((2, 8), np.float32) / np.sqrt(8), 5)
    assert (found == -1).all() and len(index) == 0


@pytest.mark.parametrize("kind", [k for k in list_indexes() if k != "flat"])
def test_every_backend_scores_like_exact_search(kind, config):
    """The open-set threshold compares raw cosines: a backend must return them, not its own distance."""
    rng = np.random.default_rng(5)
    vectors, queries = unit(rng, 3000, 48), unit(rng, 50, 48)
    ids = np.arange(3000, dtype=np.int64) + 1
    exact, other = create_index("flat", 48, config, 3000), create_index(kind, 48, config, 3000)
    if other.needs_training:
        other.train(vectors)
    for index in (exact, other):
        index.add(ids, vectors)
    want_scores, want = exact.search(queries, 5)
    got_scores, got = other.search(queries, 5)
    assert (got[:, 0] == want[:, 0]).mean() >= 0.95
    same = got == want
    np.testing.assert_allclose(got_scores[same], want_scores[same], atol=1e-4)
    other.close()


def test_milvus_lite_names_the_process_holding_it(config):
    """Milvus Lite serves one process: a second one is told what to do instead of a bare gRPC error."""
    index = create_index("milvus", 8, config)
    held = (
        "from instrec.index import create_index; from instrec.config import IndexConfig; "
        f"create_index('milvus', 8, IndexConfig(uri={config.uri!r}))"
    )
    result = subprocess.run([sys.executable, "-c", held], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "one process at a time" in result.stderr
    index.close()


def test_wrong_dimension_is_refused():
    index = create_index("flat", 8, IndexConfig())
    with pytest.raises(ValueError, match="dimension 8"):
        index.add(np.arange(2), np.ones((2, 9), np.float32))


def test_registry_refuses_unknown_and_duplicates():
    with pytest.raises(ConfigError, match="unknown index backend"):
        create_index("annoy", 8, IndexConfig())
    with pytest.raises(ValueError, match="twice"):
        register_index("flat", lambda p, c: None)(lambda d, c, n: None)


def test_ivf_answers_like_exact_search_with_exact_scores():
    """The PQ codes only pick candidates: ranks and scores come from the stored vectors."""
    rng = np.random.default_rng(2)
    n, d = 6000, 64
    vectors = unit(rng, n, d)
    ids = np.arange(n, dtype=np.int64) + 10
    exact, approx = create_index("flat", d, IndexConfig(), n), create_index("ivf", d, IndexConfig(), n)
    approx.train(vectors)
    for index in (exact, approx):
        index.add(ids, vectors)
    queries = vectors[:100] + 0.3 * unit(rng, 100, d)
    want_scores, want = exact.search(queries, 10)
    got_scores, got = approx.search(queries, 10)
    assert (got[:, 0] == want[:, 0]).mean() >= 0.99
    same = got == want
    np.testing.assert_allclose(got_scores[same], want_scores[same], atol=1e-5)


def test_ivf_probes_its_share_of_the_cells_unless_told():
    index = create_index("ivf", 16, IndexConfig(), 100_000)
    assert index.nprobe == faiss.extract_index_ivf(index.coarse.index).nlist * PROBED_SIXTEENTHS // 16
    assert create_index("ivf", 16, IndexConfig(nprobe=3), 100_000).nprobe == 3


def descriptor_like(rng, instances, shots, d, rank=64):
    """Unit vectors with a common mean direction, a decaying spectrum and within-instance noise."""
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T.astype(np.float32)
    scale = (np.arange(1, rank + 1) ** -0.6).astype(np.float32)
    mean = 2.0 * unit(rng, 1, d)
    centres = rng.standard_normal((instances, rank)).astype(np.float32) * scale * 1.6

    def draw(rows):
        coords = rows + rng.standard_normal(rows.shape).astype(np.float32) * scale
        x = coords @ basis + mean + 0.15 * rng.standard_normal((len(rows), d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(np.repeat(centres, shots, axis=0)), draw(centres[:200])


def test_ivf_default_matches_exact_search_on_clustered_vectors():
    """Codes taken in a reduced space (d > CODE_DIMS) still keep exact search's answer and scores."""
    rng = np.random.default_rng(3)
    d = 384
    vectors, queries = descriptor_like(rng, 3000, 3, d)
    ids = np.arange(len(vectors), dtype=np.int64) + 1
    exact, approx = create_index("flat", d, IndexConfig(), len(ids)), create_index("ivf", d, IndexConfig(), len(ids))
    assert isinstance(approx.coarse.index, faiss.IndexPreTransform)
    assert faiss.extract_index_ivf(approx.coarse.index).d == CODE_DIMS
    approx.train(vectors)
    for index in (exact, approx):
        index.add(ids, vectors)
    want_scores, want = exact.search(queries, 10)
    got_scores, got = approx.search(queries, 10)
    assert (got[:, 0] == want[:, 0]).mean() >= 0.99
    same = got == want
    np.testing.assert_allclose(got_scores[same], want_scores[same], atol=1e-5)


def test_ivf_reduced_codes_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(4)
    vectors, queries = descriptor_like(rng, 1000, 2, 320)
    ids = np.arange(len(vectors), dtype=np.int64) * 5 + 1
    index = create_index("ivf", 320, IndexConfig(), len(ids))
    index.train(vectors)
    index.add(ids, vectors)
    index.save(tmp_path / "ivf.faiss")
    again = load_index("ivf", tmp_path / "ivf.faiss", IndexConfig())
    for a, b in zip(index.search(queries, 5), again.search(queries, 5)):
        np.testing.assert_array_equal(a, b)
    assert index.remove(ids[:10]) == 10 and not np.isin(index.search(vectors[:10], 5)[1], ids[:10]).any()


@pytest.mark.parametrize("threads", [1, 2])
def test_ivf_one_query_at_a_time_answers_like_a_batch(threads):
    """A lone query is split across the threads by cells, a batch by queries: same answers either way."""
    rng = np.random.default_rng(5)
    vectors, queries = descriptor_like(rng, 2000, 3, 320)
    ids = np.arange(len(vectors), dtype=np.int64) + 1
    index = create_index("ivf", 320, IndexConfig(), len(ids))
    index.train(vectors)
    index.add(ids, vectors)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        batch_scores, batch = index.search(queries[:40], 20)
        for row, query in enumerate(queries[:40]):
            scores, found = index.search(query[None], 20)
            np.testing.assert_array_equal(found[0], batch[row])
            np.testing.assert_allclose(scores[0], batch_scores[row], atol=1e-6)
    finally:
        faiss.omp_set_num_threads(before)
