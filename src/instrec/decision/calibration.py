"""From scores to "unknown": the open-set threshold, how sure it is, and what a score's confidence is.

A threshold is measured on the gallery itself (:mod:`instrec.decision.probes` makes query-like
views of enrolled images and takes real scene photos as strangers), or on the user's own negatives.
A few hundred impostor scores say little about a 1 % false-accept rate, so the measurement is
blended with a prior: the threshold and confidence curve of the default pipeline, fitted offline
on real evaluation data (``benchmarks/fit_decision_prior.py`` writes ``prior.json``, and
``prior-int8.json`` for the INT8 descriptor, whose scores differ a little). The prior
weighs as much as ``strength`` impostor scores: a gallery of one instance decides almost by the
prior alone, one with thousands of scores by its own.

The confidence shown to users is a logistic map of the score to the probability that the answer
is right, fitted on the same real queries (right answers against wrong ones and strangers). Its
variable is the score's distance from the threshold in units of the gallery's own stride from a
typical stranger (the median impostor score) to the threshold: score scales differ by an order of
magnitude between galleries (a verified label scores near 1, a textureless object's right answer
near its strangers), and measured in that stride one curve fits them all.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from instrec.decision.scores import UNRELATED_SCORE

FALLBACK_THRESHOLD = 0.45  # raw score (cosine or fused); until measured, for pipelines without a prior
PRIOR_FILE = Path(__file__).with_name("prior.json")  # the default descriptor's, at fp32
WEAK_ESTIMATE = 300  # fewer impostor scores than this: the report says so and suggests negatives
MIN_STRIDE = 0.02  # floor of threshold - median stranger score: a curve steeper than that is noise


@dataclass(frozen=True)
class Prior:
    """The decision of one scoring pipeline (``key``), fitted on real data before any gallery exists."""

    key: str  # the scoring key (Config.scoring_key) it was fitted under
    thresholds: dict[str, float]  # false-accept rate -> the score letting through that share of strangers
    # confidence = sigmoid(slope * (score - threshold) / (threshold - stranger_median) + offset)
    slope: float
    offset: float
    stranger_median: float  # what a typical stranger scores, until a gallery has measured its own
    strength: int  # how many impostor scores of a gallery it weighs as
    fitted_on: str = ""

    def curve(self, threshold: float, stranger_median: float) -> tuple[float, float]:
        """(slope, intercept) of the raw-score confidence at ``threshold`` for a gallery whose
        strangers score ``stranger_median`` in the median."""
        slope = self.slope / max(threshold - stranger_median, MIN_STRIDE)
        return slope, self.offset - slope * threshold

    def blend(self, target_far: float, measured: float, impostors: int) -> tuple[float, float]:
        """(threshold, the prior's weight in it) for a gallery that measured ``measured`` on
        ``impostors`` scores."""
        weight = self.strength / (self.strength + impostors)
        return weight * self.threshold(target_far) + (1 - weight) * measured, weight

    def threshold(self, target_far: float) -> float:
        """The prior threshold for ``target_far``, interpolated in log false-accept rate."""
        rates = sorted((float(far), t) for far, t in self.thresholds.items())
        logs = [math.log(far) for far, _ in rates]
        return float(np.interp(math.log(target_far), logs, [t for _, t in rates]))

    @classmethod
    def load(cls, path: Path = PRIOR_FILE) -> "Prior | None":
        return cls(**json.loads(path.read_text())) if path.exists() else None

    @staticmethod
    def shipped(key: str) -> "Prior | None":
        """The prior shipped with instrec for the scoring key ``key``, if any (read once per process:
        every recognition asks for it)."""
        return _shipped_priors().get(key)

    def save(self, path: Path = PRIOR_FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def prior_file(precision: str) -> Path:
    """Where the default pipeline's prior at descriptor ``precision`` ships."""
    return PRIOR_FILE if precision == "fp32" else PRIOR_FILE.with_name(f"prior-{precision}.json")


@functools.cache
def _shipped_priors() -> dict[str, Prior]:
    priors = (Prior.load(path) for path in sorted(PRIOR_FILE.parent.glob("prior*.json")))
    return {prior.key: prior for prior in priors if prior is not None}


@dataclass(frozen=True)
class Calibration:
    threshold: float
    slope: float  # confidence = sigmoid(slope * score + intercept)
    intercept: float
    target_far: float
    genuine: int  # how many genuine / impostor scores the estimate rests on
    impostor: int
    tar_at_threshold: float | None
    source: str  # where the scores came from: "prior", "probes", or negatives for the impostors
    false_accepts: int = 0  # impostor scores at or above the threshold
    measured_threshold: float | None = None  # the gallery's own, before blending with the prior
    prior_weight: float = 0.0  # share of the threshold that is the prior's
    images: int = 0  # gallery images when measured: tells when the gallery has changed materially
    duplicates: int = 0  # instances sharing a picture with another, kept out of each other's impostors
    stranger_median: float | None = None  # the median impostor score (None: nothing measured)

    def confidence(self, score: float) -> float:
        return _sigmoid(self.slope * score + self.intercept)

    def far_interval(self) -> tuple[float, float]:
        """95 % Wilson interval of the false-accept rate at the threshold, from the impostor scores."""
        return wilson_interval(self.false_accepts, self.impostor)

    def describe(self) -> str:
        """What the threshold rests on, in words a user can act on."""
        if self.impostor == 0 and self.source != "prior":
            return (
                f"threshold {self.threshold:.3f} is the profile's fallback; nothing has been measured on this "
                "gallery yet (instrec calibrate)."
            )
        if self.impostor == 0:
            return (
                f"threshold {self.threshold:.3f} is the prior fitted on real evaluation data; nothing has been "
                "measured on this gallery yet (instrec calibrate)."
            )
        low, high = self.far_interval()
        words = (
            f"threshold {self.threshold:.3f} rests on {self.impostor} stranger and {self.genuine} genuine "
            f"scores ({self.source}); {self.false_accepts} strangers reach it: false-accept rate "
            f"{low:.1%}-{high:.1%} (95 % interval) against a target of {self.target_far:.1%}"
        )
        if self.prior_weight > 0:
            words += f"; {self.prior_weight:.0%} of it is the prior"
        if self.duplicates:
            words += (
                f"; {self.duplicates} instances share a picture with another (the same photo enrolled "
                "twice?) and were kept out of each other's stranger scores"
            )
        if self.impostor < WEAK_ESTIMATE:
            words += (
                "; the estimate is weak: calibrate with --negatives (photos of things not enrolled, taken "
                "like real queries) to firm it up"
            )
        return words + "."

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        return cls(**json.loads(text))


def default_calibration(
    prior: Prior | None, competitor_weight: float, target_far: float = 0.01, fallback: float | None = None
) -> Calibration:
    """Before any measurement: the prior, or for a pipeline without one a logistic centred on
    ``fallback`` (its profile's uncalibrated threshold), else on a guess."""
    if prior is not None:
        threshold = prior.threshold(target_far)
        return Calibration(
            threshold, *prior.curve(threshold, prior.stranger_median), target_far, 0, 0, None, "prior", prior_weight=1.0
        )
    threshold = fallback_threshold(competitor_weight) if fallback is None else fallback
    return Calibration(threshold, 10.0, -10.0 * threshold, target_far, 0, 0, None, "default")


def fallback_threshold(competitor_weight: float) -> float:
    """The uncalibrated threshold for scores lowered by ``competitor_weight`` x their rivals' mean."""
    return FALLBACK_THRESHOLD - competitor_weight * UNRELATED_SCORE


def calibrate(
    genuine: np.ndarray,
    impostor: np.ndarray,
    target_far: float,
    source: str,
    prior: Prior | None = None,
    floor: float | None = None,
    **extra: int,
) -> Calibration:
    """Threshold = the impostor quantile that lets through ``target_far`` of impostors (at least
    ``floor``), blended with ``prior`` by their numbers of scores; ``extra`` fills the bookkeeping fields."""
    genuine = np.asarray(genuine, np.float64)
    impostor = np.asarray(impostor, np.float64)
    if len(impostor) == 0:
        raise ValueError("calibration needs impostor scores")
    measured = float(np.quantile(impostor, 1.0 - target_far, method="higher"))
    measured = float(np.nextafter(measured, np.inf))  # strictly above the quantile impostor
    measured = measured if floor is None else max(measured, floor)
    median = float(np.median(impostor))
    if prior is None:
        threshold, weight = measured, 0.0
        slope, intercept = _fit_logistic(genuine, impostor, threshold)
    else:
        threshold, weight = prior.blend(target_far, measured, len(impostor))
        slope, intercept = prior.curve(threshold, median)
    tar = float((genuine >= threshold).mean()) if len(genuine) else None
    return Calibration(
        threshold,
        slope,
        intercept,
        target_far,
        int(len(genuine)),
        int(len(impostor)),
        tar,
        source,
        false_accepts=int((impostor >= threshold).sum()),
        measured_threshold=measured,
        prior_weight=weight,
        stranger_median=median,
        **extra,
    )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def fit_logistic(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling, ``P(label | score) = sigmoid(a * score + b)``, by damped Newton steps on the
    ``weights``-weighted log loss (default: each class weighs half). Returns (a, b); (nan, nan)
    when it does not converge to an increasing curve."""
    x, y = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if weights is None:
        positives, negatives = max(float(y.sum()), 1.0), max(float(len(y) - y.sum()), 1.0)
        weights = np.where(y == 1, 0.5 / positives, 0.5 / negatives)
    w = np.asarray(weights, np.float64) / np.sum(weights)
    # Fitted on the standardised score: Newton from (1, 0) then starts near the answer for any scale.
    centre = float(np.sum(w * x))
    scale = math.sqrt(float(np.sum(w * (x - centre) ** 2))) or 1.0
    z = np.stack([(x - centre) / scale, np.ones_like(x)], axis=1)
    ridge = np.diag([1e-4, 1e-9])

    def loss(theta: np.ndarray) -> float:
        t = z @ theta
        return float(np.sum(w * (np.logaddexp(0.0, t) - y * t)) + 0.5 * theta @ ridge @ theta)

    theta = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -60.0, 60.0)))
        gradient = z.T @ (w * (p - y)) + ridge @ theta
        step = np.linalg.solve((z * (w * p * (1 - p))[:, None]).T @ z + ridge, gradient)
        shrink = 1.0
        current = loss(theta)
        while loss(theta - shrink * step) > current and shrink > 1e-6:  # never uphill
            shrink /= 2
        theta = theta - shrink * step
        if np.abs(shrink * step).max() < 1e-10:
            break
    a, b = theta[0] / scale, theta[1] - theta[0] * centre / scale
    return (float(a), float(b)) if math.isfinite(a) and math.isfinite(b) and a > 0 else (math.nan, math.nan)


def _fit_logistic(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """Class-balanced Platt scaling of genuine against impostor; centred on the threshold if degenerate."""
    if len(genuine) >= 3:
        a, b = fit_logistic(np.concatenate([genuine, impostor]), np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))]))
        if math.isfinite(a):
            return a, b
    slope = 4.0 / max(float(np.std(impostor)), 0.02)
    return slope, -slope * threshold


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
