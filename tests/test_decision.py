"""Scoring rules: region offsets (the query side of CSLS), the query's best-row similarity and its
best row per gallery vector, and instance scores against their competitors."""

from __future__ import annotations

import numpy as np
import pytest

from instrec.decision import InstanceScore, Query, Regions, against_competitors, region_offsets


def test_a_row_like_the_whole_gallery_is_lowered_and_a_distinctive_one_raised():
    whole = np.array([0.5, 0.4, 0.3])
    generic = np.array([0.7, 0.69, 0.68])  # resembles everything
    distinctive = np.array([0.6, 0.1, 0.0])  # resembles one image
    offsets = region_offsets([whole, generic, distinctive], neighbours=3, penalty=0.5)
    assert offsets[0] == 0  # the whole image is the reference
    assert offsets[1] == pytest.approx(0.5 * (0.69 - 0.4))
    assert offsets[2] == pytest.approx(0.5 * (0.7 / 3 - 0.4))
    assert offsets[2] < 0 < offsets[1]


def test_offsets_are_zero_when_off_or_when_there_is_nothing_to_compare():
    rows = [np.array([0.5]), np.array([0.9])]
    assert not region_offsets(rows, 10, 0.0).any()
    assert not region_offsets([np.array([0.5])], 10, 0.5).any()  # the whole image alone
    assert not region_offsets([np.zeros(0), np.array([0.9])], 10, 0.5).any()  # empty gallery
    assert region_offsets([np.array([0.5]), np.zeros(0)], 10, 0.5).tolist() == [0, 0]


def test_query_similarity_is_the_best_row_after_offsets():
    query = Query(np.eye(2, dtype=np.float32), np.array([0.0, 0.5], np.float32))
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    assert query.similarity(gallery).tolist() == pytest.approx([1.0, 0.5, 0.6])
    assert Query.plain(np.array([0.0, 1.0])).similarity(gallery).tolist() == pytest.approx([0.0, 1.0, 0.8])

    assert query.best_rows(gallery).tolist() == [0, 1, 0]  # row 1 would give 0.8 - 0.5


def test_whole_photo_row_comes_first_with_its_box():
    regions = Regions(np.ones((2, 3), np.float32), np.array([[0, 0.5, 0, 0.5], [0.5, 1, 0.5, 1]], np.float32))
    rows = regions.after_whole(np.zeros(3, np.float32))
    assert rows.vectors[:, 0].tolist() == [0, 1, 1]
    assert rows.boxes.tolist() == [[0, 1, 0, 1], [0, 0.5, 0, 0.5], [0.5, 1, 0.5, 1]]
    assert Regions.none(3).after_whole(np.zeros(3, np.float32)).boxes.tolist() == [[0, 1, 0, 1]]


def test_an_instance_that_stands_out_keeps_more_of_its_score_than_one_among_look_alikes():
    standing_out = [InstanceScore(1, 0.8, 10), InstanceScore(2, 0.3, 20), InstanceScore(3, 0.2, 30)]
    among_alikes = [InstanceScore(1, 0.85, 10), InstanceScore(2, 0.8, 20)]
    a, b = against_competitors(standing_out, 0.5), against_competitors(among_alikes, 0.5)
    assert [s.score for s in a] == pytest.approx([0.8 - 0.15, 0.3 - 0.4, 0.2 - 0.4])
    assert [s.instance_pk for s in a] == [1, 2, 3] and a[0].vector_id == 10
    assert a[0].score > b[0].score  # raw 0.80 < 0.85, but only the first is sure
    assert against_competitors(standing_out, 0.0) == standing_out
    assert against_competitors([InstanceScore(1, 0.8, 10)], 0.5)[0].score == 0.8  # no competitor
    assert against_competitors([], 0.5) == []
