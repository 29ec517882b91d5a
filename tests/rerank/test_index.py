from __future__ import annotations

import numpy as np
import pytest

from instrec.profiles import RerankTuning
from instrec.rerank import LocalFeatures, LocalIndex, LocalVerifier, train_vocabulary

from .conftest import PHOTOS, warped


@pytest.fixture
def index(verifier, gallery_features) -> LocalIndex:
    local = verifier.new_index()
    local.add(list(gallery_features), list(gallery_features.values()))
    return local


@pytest.mark.parametrize("position", range(len(PHOTOS)))
def test_a_warped_view_finds_its_source_first(index, photos, verifier, position):
    query = verifier.extract(warped(photos[PHOTOS[position]], seed=position))
    hits = index.search(query, k=3)
    assert hits[0][0] == position + 1
    assert hits[0][1] > 2 * hits[1][1]


def test_removed_images_are_never_returned(index, photos, verifier):
    query = verifier.extract(warped(photos["coffee"], seed=3))
    index.remove([2])
    assert 2 not in {i for i, _ in index.search(query, k=10)}
    assert 2 not in index and len(index) == len(PHOTOS) - 1


def test_re_adding_an_id_replaces_it(index, gallery_features):
    index.add([1], [gallery_features[2]])  # image 1 now holds coffee's features
    hits = dict(index.search(gallery_features[2], k=5))
    assert hits[1] == pytest.approx(hits[2], rel=1e-5)


@pytest.mark.parametrize("older_file", [False, True], ids=["", "saved-without-word-counts"])
def test_save_and_load_give_the_same_answers(index, tmp_path, verifier, photos, older_file):
    query = verifier.extract(warped(photos["rocket"], seed=7))
    before = index.search(query, k=5)
    index.save(tmp_path, extra={"seq": 42})
    if older_file:  # as written before the per-word document counts were stored: they are counted on load
        (saved,) = tmp_path.glob("*.npz")
        with np.load(saved) as z:
            arrays = {name: z[name] for name in z.files if name != "df"}
        np.savez(saved, **arrays)
    loaded, meta = verifier.load_index(tmp_path)
    assert meta["seq"] == 42
    assert [i for i, _ in loaded.search(query, k=5)] == [i for i, _ in before]
    np.testing.assert_allclose([s for _, s in loaded.search(query, k=5)], [s for _, s in before], rtol=1e-5)


def test_an_index_saved_with_another_vocabulary_is_refused(index, tmp_path, gallery_features):
    index.save(tmp_path)
    other = train_vocabulary(np.concatenate([f.descriptors for f in gallery_features.values()]), 64)
    with pytest.raises(ValueError, match="another vocabulary"):
        LocalIndex.load(tmp_path, other)


def test_memory_per_gallery_image_stays_within_budget(index, gallery_features):
    """Beyond fixed per-vocabulary tables, each image costs its postings: 12 B per keypoint."""
    index.compact()
    before = index.nbytes
    more = {pk + 100: f for pk, f in gallery_features.items()}
    index.add(list(more), list(more.values()))
    index.compact()
    per_image = (index.nbytes - before) / len(more)
    assert per_image <= 16 * 1024
    assert per_image >= 12 * np.mean([len(f) for f in more.values()])


def test_a_query_descriptor_votes_once_per_image_however_often_it_matches_there(verifier, gallery_features):
    """Burstiness: an image repeating the query's descriptor five times scores as one holding it once
    (same keypoint count, fillers in other visual words); counting every match would give it 5x."""
    source = gallery_features[1]
    query = LocalFeatures(source.xy[:1], source.descriptors[:1])
    query_words, _ = verifier.vocabulary.encode(query.rootsift(), verifier.tuning.multi_assign)
    filler_words, _ = verifier.vocabulary.encode(gallery_features[2].rootsift(), 1)
    fillers = gallery_features[2].descriptors[~np.isin(filler_words[:, 0], query_words)][:9]

    def image(copies: int) -> LocalFeatures:
        descriptors = np.concatenate([np.repeat(query.descriptors, copies, axis=0), fillers[: 10 - copies]])
        return LocalFeatures(np.zeros((10, 2), np.float32), descriptors)

    index = verifier.new_index()
    others = {10 + pk: gallery_features[pk] for pk in (3, 4, 5)}  # so the query's word is rare (idf > 0)
    index.add([1, 5, *others], [image(1), image(5), *others.values()])
    scores = dict(index.search(query, 5))
    assert scores[1] > 0 and scores[5] == pytest.approx(scores[1], rel=1e-6)


def test_a_postings_budget_leaves_votes_out_and_never_adds_any(index, photos, verifier):
    for position, name in enumerate(PHOTOS):
        query = verifier.extract(warped(photos[name], seed=position))
        index.max_postings = None
        unlimited = dict(index.search(query, k=len(PHOTOS)))
        index.max_postings = 1_000  # a fraction of what these queries visit
        limited = dict(index.search(query, k=len(PHOTOS)))
        assert max(limited, key=limited.__getitem__) == position + 1
        assert limited[position + 1] < unlimited[position + 1]
        assert all(score <= unlimited[pk] * (1 + 1e-9) for pk, score in limited.items())


def test_the_budget_spends_itself_on_the_rarest_words(verifier, gallery_features):
    """A query holding one of image 1's descriptors and one that 50 other images share: a budget too
    small for the shared word's list still finds image 1 and none of the 50."""
    source, common = gallery_features[1], gallery_features[2]
    query = LocalFeatures(np.zeros((2, 2), np.float32), np.concatenate([source.descriptors[:1], common.descriptors[:1]]))
    sharing = {100 + i: LocalFeatures(np.zeros((1, 2), np.float32), common.descriptors[:1]) for i in range(50)}
    index = verifier.new_index()
    index.add([1, *sharing], [source, *sharing.values()])
    assert set(sharing) <= {pk for pk, _ in index.search(query, k=100)}
    index.max_postings = 30
    assert [pk for pk, _ in index.search(query, k=100)] == [1]


def test_a_loaded_index_searches_within_the_tuned_budget(index, tmp_path, verifier, photos):
    query = verifier.extract(warped(photos["coffee"], seed=1))
    index.save(tmp_path)
    loaded, _ = LocalVerifier(RerankTuning(local_postings=500)).load_index(tmp_path)
    on_load = dict(loaded.search(query, k=5))
    index.max_postings = 500
    assert on_load == pytest.approx(dict(index.search(query, k=5)))
    index.max_postings = None
    assert on_load[2] < dict(index.search(query, k=5))[2]
