import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.training.gate import MAX_TOP1_DROP, MIN_COSINE, MIN_LOW_COSINE, Gate, low_quantile

LABELS = np.repeat(np.arange(4), 3)
ORDER = np.tile(np.arange(3), 4)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(seed: int = 0) -> np.ndarray:
    """Three photos around each of four well-separated centres: fp32 vectors that 1-shot recognises."""
    rng = np.random.default_rng(seed)
    return unit(np.eye(4, 16)[LABELS] * 3 + 0.1 * rng.normal(size=(12, 16)))


def test_the_gate_lives_with_its_thresholds():
    assert Gate() == Gate(MIN_COSINE, MAX_TOP1_DROP, MIN_LOW_COSINE) and (MIN_COSINE, MAX_TOP1_DROP) == (0.99, 0.01)


def test_close_vectors_pass():
    fp32 = clustered()
    int8 = unit(fp32 + 0.01 * np.random.default_rng(1).normal(size=fp32.shape))
    verdict = Gate().judge(fp32, int8, LABELS, ORDER)
    assert verdict.passed and verdict.failures == ()
    assert verdict.cosine_mean > 0.99 and verdict.cosine_min <= verdict.cosine_mean
    assert verdict.top1_fp32 == verdict.top1_int8 == 1.0
    assert verdict.to_dict()["passed"] is True and verdict.to_dict()["min_cosine"] == MIN_COSINE


def test_far_vectors_fail_on_cosine_and_say_its_value():
    fp32 = clustered()
    int8 = unit(fp32 + 0.3 * np.random.default_rng(1).normal(size=fp32.shape))
    verdict = Gate().judge(fp32, int8, LABELS, ORDER)
    assert not verdict.passed and len(verdict.failures) == 2  # the mean, and the tail with it
    assert "mean cosine" in verdict.failures[0] and f"{verdict.cosine_mean:.4f}" in verdict.failures[0]


def test_a_lost_query_fails_on_top1_even_with_close_vectors():
    fp32 = clustered()
    int8 = fp32.copy()
    int8[1] = fp32[3]  # one query of instance 0 now looks like instance 1's shot
    verdict = Gate(min_cosine=0.0).judge(fp32, int8, LABELS, ORDER)
    assert verdict.top1_int8 == pytest.approx(1 - 1 / 8) and verdict.top1_fp32 == 1.0
    assert len(verdict.failures) == 1 and "top-1 is 0.8750 against fp32's 1.0000" in verdict.failures[0]
    assert Gate(min_cosine=0.0, max_top1_drop=0.2).judge(fp32, int8, LABELS, ORDER).passed


def test_a_check_set_without_queries_is_refused():
    with pytest.raises(InstrecError, match="2 or more photos"):
        Gate().judge(clustered()[:4], clustered()[:4], np.arange(4), np.zeros(4))


def spread_clusters(instances: int = 10, photos: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(instances), photos)
    return (
        unit(np.eye(instances, 32)[labels] * 3 + 0.1 * rng.normal(size=(len(labels), 32))),
        labels,
        np.tile(np.arange(photos), instances),
    )


def moved(fp32: np.ndarray, rows: np.ndarray, cosine: float) -> np.ndarray:
    """``fp32`` with ``rows`` turned away to exactly ``cosine``, towards a direction no instance uses."""
    out = fp32.copy()
    away = np.zeros_like(fp32[rows])
    away[:, -1] = 1.0
    away = unit(away - np.sum(away * fp32[rows], axis=1, keepdims=True) * fp32[rows])  # orthogonal to each row
    out[rows] = cosine * fp32[rows] + np.sqrt(1 - cosine**2) * away
    return out


def test_a_bad_tail_fails_on_the_low_quantile_though_the_mean_passes():
    fp32, labels, order = spread_clusters()
    int8 = moved(fp32, np.arange(1, 100, 20), 0.85)  # 5 photos of 100 (not shots) far off, the rest exact
    verdict = Gate().judge(fp32, int8, labels, order)
    assert verdict.cosine_mean >= MIN_COSINE and verdict.top1_int8 == verdict.top1_fp32
    assert verdict.cosine_low == pytest.approx(0.85, abs=1e-5) and verdict.cosine_low < MIN_LOW_COSINE
    assert len(verdict.failures) == 1 and "lowest 1% of per-photo cosines" in verdict.failures[0]


def test_a_single_outlier_does_not_refuse():
    fp32, labels, order = spread_clusters(4, 3)
    int8 = moved(fp32, np.array([1]), 0.9)
    verdict = Gate(min_cosine=0.0).judge(fp32, int8, labels, order)
    assert verdict.passed and verdict.cosine_min == pytest.approx(0.9, abs=1e-5) and verdict.cosine_low > 0.999


def test_the_low_quantile_leaves_out_a_share_of_a_large_set():
    cosine = np.linspace(0.9, 1.0, 1000)
    assert low_quantile(cosine) == cosine[10] and low_quantile(cosine[:5]) == cosine[1]
