"""The threshold, its uncertainty, the shipped prior and the confidence curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instrec.config import Config
from instrec.decision import Calibration, Prior, calibrate, default_calibration, fit_logistic, wilson_interval
from instrec.decision.calibration import prior_file

PRIOR = Prior(
    key="k", thresholds={"0.001": 0.9, "0.01": 0.6, "0.1": 0.3}, slope=3.0, offset=1.0, stranger_median=0.1, strength=200
)


def test_the_prior_threshold_is_interpolated_in_log_false_accept_rate():
    assert PRIOR.threshold(0.01) == pytest.approx(0.6)
    assert PRIOR.threshold(math.sqrt(0.01 * 0.1)) == pytest.approx(0.45)
    assert PRIOR.threshold(0.5) == pytest.approx(0.3) and PRIOR.threshold(1e-5) == pytest.approx(0.9)  # clamped


def test_few_scores_decide_by_the_prior_and_many_by_the_gallery():
    rng = np.random.default_rng(0)
    few = calibrate(rng.uniform(0.6, 1.0, 10), rng.uniform(0.0, 0.2, 20), 0.01, "probes", PRIOR)
    many = calibrate(rng.uniform(0.6, 1.0, 1000), rng.uniform(0.0, 0.2, 20_000), 0.01, "probes", PRIOR)
    assert few.prior_weight == pytest.approx(200 / 220) and many.prior_weight == pytest.approx(200 / 20_200)
    assert few.threshold > 0.5  # mostly the prior's 0.6
    assert many.threshold < 0.21  # mostly the gallery's own quantile (~0.198)
    assert few.measured_threshold == pytest.approx(many.measured_threshold, abs=0.02)
    # the confidence curve keeps its shape, moves with the threshold and stretches with the gallery's
    # stride from a typical stranger to it
    for c in (few, many):
        stride = c.threshold - c.stranger_median
        assert c.confidence(c.threshold) == pytest.approx(1 / (1 + math.exp(-1.0)))
        assert c.confidence(c.threshold + stride) == pytest.approx(1 / (1 + math.exp(-4.0)))
        assert c.confidence(c.stranger_median) == pytest.approx(1 / (1 + math.exp(2.0)))
    assert many.slope > few.slope  # its strangers sit closer below its threshold


def test_before_any_measurement_the_prior_stride_shapes_the_curve():
    c = default_calibration(PRIOR, 0.75)
    assert c.threshold == pytest.approx(0.6) and c.stranger_median is None
    assert c.confidence(0.6) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert c.confidence(0.1) == pytest.approx(1 / (1 + math.exp(2.0)))  # at the prior's typical stranger


def test_without_a_prior_the_gallery_decides_alone_and_the_curve_is_fitted():
    genuine, impostor = np.linspace(0.5, 1.0, 50), np.linspace(0.0, 0.4, 200)
    c = calibrate(genuine, impostor, 0.01, "probes")
    assert c.prior_weight == 0 and c.threshold == c.measured_threshold and 0.39 < c.threshold <= 0.41
    assert c.false_accepts <= 2 and c.tar_at_threshold == 1.0
    assert c.confidence(0.9) > 0.9 > 0.1 > c.confidence(0.1)


def test_the_report_names_its_uncertainty_and_what_to_do_about_it():
    weak = calibrate(np.ones(5), np.linspace(0, 0.3, 40), 0.01, "probes of 3 images", PRIOR, duplicates=2)
    words = weak.describe()
    assert "40 stranger" in words and "95 % interval" in words and "--negatives" in words
    assert "2 instances share a picture" in words and "prior" in words
    low, high = weak.far_interval()
    assert 0 <= low <= weak.false_accepts / 40 <= high <= 1
    strong = calibrate(np.ones(5), np.linspace(0, 0.3, 5000), 0.01, "negatives")
    assert "--negatives" not in strong.describe()
    assert "prior" in default_calibration(PRIOR, 0.75).describe()


def test_wilson_interval_brackets_the_rate_and_narrows_with_more_trials():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    small, large = wilson_interval(1, 20), wilson_interval(50, 1000)
    assert small[0] < 0.05 < small[1] and large[0] < 0.05 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_a_calibration_survives_its_json():
    c = calibrate(np.ones(5), np.linspace(0, 0.3, 40), 0.05, "probes", PRIOR, images=7, duplicates=1)
    assert Calibration.from_json(c.to_json()) == c


def test_the_logistic_fit_recovers_a_known_curve():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 20_000)
    y = rng.uniform(0, 1, len(x)) < 1 / (1 + np.exp(-(8 * x - 4)))
    a, b = fit_logistic(x, y.astype(float), np.ones(len(x)))
    assert a == pytest.approx(8, rel=0.1) and b == pytest.approx(-4, rel=0.1)
    # the same curve on a score scale a thousand times smaller
    a, b = fit_logistic(x / 1000, y.astype(float), np.ones(len(x)))
    assert a == pytest.approx(8000, rel=0.1) and b == pytest.approx(-4, rel=0.1)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_shipped_priors_were_fitted_under_the_default_scoring_settings(precision):
    """A default that changes scores invalidates the priors: rerun benchmarks/fit_decision_prior.py
    --write (and --precision int8 --write)."""
    prior = Prior.load(prior_file(precision))
    key = Config().with_overrides({"descriptor.precision": precision}).scoring_key()
    assert prior is not None and prior.key == key
    assert prior.strength > 0 and 0 < prior.threshold(0.01) < 1 and prior.slope > 0
    assert Prior.shipped(key) == prior  # a library at this precision starts from it


def test_no_prior_is_shipped_for_other_scoring_settings():
    assert Prior.shipped(Config().with_overrides({"rerank.enabled": False}).scoring_key()) is None
