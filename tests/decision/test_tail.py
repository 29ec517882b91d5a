import math

import pytest

from instrec.decision.tail import tail_threshold

SCALE, DIM = 1.2, 12.0


def test_the_threshold_of_one_vector_lets_through_the_target_share_of_pairs():
    # (d / scale) ** dim = far at the threshold's distance d = sqrt(2 - 2 cos)
    distance = math.sqrt(2 - 2 * tail_threshold(SCALE, DIM, 0.01, 1))
    assert (distance / SCALE) ** DIM == pytest.approx(0.01)


def test_the_threshold_rises_with_the_gallery_but_never_reaches_one():
    thresholds = [tail_threshold(SCALE, DIM, 0.01, n) for n in (1, 3, 10, 100, 10_000, 10**9)]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    assert thresholds[-1] < 1.0
    # against n vectors a share 1 - (1 - far)^(1/n) of pairs, about far / n, may reach it
    distance = math.sqrt(2 - 2 * thresholds[3])
    assert (distance / SCALE) ** DIM == pytest.approx(0.01 / 100, rel=0.01)


def test_a_stricter_target_gives_a_higher_threshold_and_an_empty_gallery_counts_as_one():
    assert tail_threshold(SCALE, DIM, 0.001, 10) > tail_threshold(SCALE, DIM, 0.01, 10)
    assert tail_threshold(SCALE, DIM, 0.01, 0) == tail_threshold(SCALE, DIM, 0.01, 1)
    with pytest.raises(ValueError):
        tail_threshold(SCALE, DIM, 1.0, 10)
