"""Scoring rules: region offsets (the query side of CSLS) and the query's best-row similarity."""

from __future__ import annotations

import numpy as np
import pytest

from instrec.decision import Query, region_offsets


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
