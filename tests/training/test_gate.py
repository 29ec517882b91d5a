import numpy as np
import pytest

from instrec.errors import InstrecError
from instrec.training.gate import MAX_TOP1_DROP, MIN_COSINE, Gate

LABELS = np.repeat(np.arange(4), 3)
ORDER = np.tile(np.arange(3), 4)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(seed: int = 0) -> np.ndarray:
    """Three photos around each of four well-separated centres: fp32 vectors that 1-shot recognises."""
    rng = np.random.default_rng(seed)
    return unit(np.eye(4, 16)[LABELS] * 3 + 0.1 * rng.normal(size=(12, 16)))


def test_the_gate_lives_with_its_thresholds():
    assert Gate() == Gate(MIN_COSINE, MAX_TOP1_DROP) and (MIN_COSINE, MAX_TOP1_DROP) == (0.99, 0.01)


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
    assert not verdict.passed and len(verdict.failures) == 1
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
