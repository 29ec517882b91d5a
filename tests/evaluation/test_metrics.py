import numpy as np
import pytest

from instrec.evaluation.metrics import QueryOutcome, auroc, average_precision, summarise, tar_at_far


def outcome(truth, ranked, score, unknown=False, relevance=(True,), relevant=1):
    return QueryOutcome(truth, list(ranked), score, unknown, list(relevance), relevant, 10.0)


def test_rank_metrics():
    outcomes = [outcome("a", "abc", 0.9), outcome("b", "abc", 0.8), outcome("c", "xyz", 0.7)]
    m = summarise(outcomes)
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top5"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["auroc"] is None and m["ms_per_query"] == 10.0


def test_average_precision():
    assert average_precision([True, False, True], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, True], 3) == pytest.approx(0.5 / 3)  # unretrieved relevant count as 0


def test_auroc_handles_ties_and_empty_sides():
    assert auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5
    assert auroc(np.array([0.1]), np.array([0.9])) == 0.0
    assert auroc(np.array([]), np.array([0.9])) is None


def test_open_set_rates_and_tar_at_far():
    known = [outcome("a", "a", 0.9), outcome("b", "ab", 0.85), outcome("c", "c", 0.3, unknown=True)]
    unknown = [outcome(None, "a", 0.5, unknown=True), outcome(None, "b", 0.88)]
    m = summarise(known + unknown)
    assert m["accept_correct"] == pytest.approx(1 / 3)
    assert m["accept_wrong"] == pytest.approx(1 / 3)
    assert m["false_reject"] == pytest.approx(1 / 3)
    assert m["true_reject"] == 0.5 and m["false_accept"] == 0.5
    # at FAR 0 the threshold sits at the best unknown (0.88): only 'a' (0.9, correct) passes
    assert tar_at_far(known, unknown, 0.0) == pytest.approx(1 / 3)
