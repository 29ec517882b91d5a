"""The decision stage: instance scores from image matches, and "unknown" from scores.

``scores`` groups image hits by instance and lowers each score against its competitors;
``calibration`` holds the threshold, its uncertainty, the shipped prior and the confidence curve;
``probes`` makes the query-like photos and strangers a gallery is calibrated with.
"""

from instrec.decision.calibration import (
    FALLBACK_THRESHOLD,
    Calibration,
    Prior,
    calibrate,
    default_calibration,
    fallback_threshold,
    fit_logistic,
    wilson_interval,
)
from instrec.decision.scores import UNRELATED_SCORE, InstanceScore, against_competitors, rank_instances

__all__ = [
    "FALLBACK_THRESHOLD",
    "UNRELATED_SCORE",
    "Calibration",
    "InstanceScore",
    "Prior",
    "against_competitors",
    "calibrate",
    "default_calibration",
    "fallback_threshold",
    "fit_logistic",
    "rank_instances",
    "wilson_interval",
]
