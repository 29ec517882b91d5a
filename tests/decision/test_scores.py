"""Scoring rules: instance scores against their competitors, and the fallback threshold."""

from __future__ import annotations

import pytest

from instrec.decision import FALLBACK_THRESHOLD, UNRELATED_SCORE, InstanceScore, against_competitors, fallback_threshold


def test_an_instance_that_stands_out_keeps_more_of_its_score_than_one_among_look_alikes():
    standing_out = [InstanceScore(1, 0.8, 10), InstanceScore(2, 0.3, 20), InstanceScore(3, 0.2, 30)]
    among_alikes = [InstanceScore(1, 0.85, 10), InstanceScore(2, 0.8, 20)]
    a, b = against_competitors(standing_out, 0.5), against_competitors(among_alikes, 0.5)
    assert [s.score for s in a] == pytest.approx([0.8 - 0.15, 0.3 - 0.4, 0.2 - 0.4])
    assert [s.instance_pk for s in a] == [1, 2, 3] and a[0].vector_id == 10
    assert a[0].score > b[0].score  # raw 0.80 < 0.85, but only the first is sure
    assert against_competitors(standing_out, 0.0) == standing_out
    alone = against_competitors([InstanceScore(1, 0.8, 10)], 0.5)[0].score
    assert alone == pytest.approx(0.8 - 0.5 * UNRELATED_SCORE)  # no competitor: as if an unrelated one
    assert against_competitors([], 0.5) == []


def test_rivals_are_the_mean_of_the_best_others_with_missing_ones_counted_as_unrelated():
    ranked = [InstanceScore(i, score, 10 * i) for i, score in enumerate([0.9, 0.6, 0.5, 0.4, 0.1])]
    lowered = [s.score for s in against_competitors(ranked, 1.0, competitors=3)]
    assert lowered == pytest.approx([0.9 - 0.5, 0.6 - 0.6, 0.5 - 0.6333333, 0.4 - 2 / 3, 0.1 - 2 / 3])
    assert lowered == sorted(lowered, reverse=True)  # the order is kept
    pair = [InstanceScore(1, 0.8, 10), InstanceScore(2, 0.7, 20)]
    assert against_competitors(pair, 1.0, competitors=5)[0].score == pytest.approx(0.8 - (0.7 + 4 * UNRELATED_SCORE) / 5)


def test_a_stranger_scores_the_same_against_one_enrolled_instance_as_against_an_unrelated_field():
    """A new library of one instance must not accept what a full one rejects."""
    alone = against_competitors([InstanceScore(1, 0.45, 10)], 0.75, competitors=5)[0].score
    field = [InstanceScore(1, 0.45, 10)] + [InstanceScore(2 + i, UNRELATED_SCORE, 20 + i) for i in range(5)]
    assert alone == pytest.approx(against_competitors(field, 0.75, competitors=5)[0].score)


def test_geometry_is_a_channel_the_field_does_not_lower():
    """A catalogue label verified by many inliers keeps that evidence whatever the other labels score."""
    ranked = [
        InstanceScore(1, 0.5, 10, geometry=0.1),
        InstanceScore(2, 0.45, 20, geometry=0.95),
        InstanceScore(3, 0.44, 30, geometry=None),
    ]
    lowered = against_competitors(ranked, 0.75, competitors=2)
    assert [s.instance_pk for s in lowered] == [2, 1, 3]  # the verified one comes first
    assert lowered[0].score == pytest.approx(0.95)
    assert lowered[1].score == pytest.approx(max(0.5 - 0.75 * (0.45 + 0.44) / 2, 0.1))
    assert lowered[2].score == pytest.approx(0.44 - 0.75 * (0.5 + 0.45) / 2)  # None: no such channel


def test_a_twin_costs_less_among_five_rivals_than_as_the_only_one():
    """A query of one of two near-identical enrolled packs: its lead over the field survives."""
    twin_and_field = [InstanceScore(1, 0.80, 10), InstanceScore(2, 0.79, 20)] + [
        InstanceScore(3 + i, 0.3, 30 + i) for i in range(4)
    ]
    unknown_field = [InstanceScore(1, 0.55, 10)] + [InstanceScore(2 + i, 0.4 - 0.02 * i, 20 + i) for i in range(5)]
    runner_up = [against_competitors(r, 0.75, 1)[0].score for r in (twin_and_field, unknown_field)]
    field = [against_competitors(r, 0.75, 5)[0].score for r in (twin_and_field, unknown_field)]
    assert runner_up[0] < runner_up[1]  # the twin pair now looks less known than an unknown object
    assert field[0] > field[1]


def test_before_calibration_the_threshold_is_lowered_as_much_as_an_unrelated_field_lowers_a_score():
    field = [InstanceScore(1, 0.6, 10)] + [InstanceScore(2 + i, UNRELATED_SCORE, 20 + i) for i in range(5)]
    lowered = against_competitors(field, 0.75, competitors=5)[0].score
    assert fallback_threshold(0.0) == FALLBACK_THRESHOLD
    assert lowered - fallback_threshold(0.75) == pytest.approx(0.6 - FALLBACK_THRESHOLD)
