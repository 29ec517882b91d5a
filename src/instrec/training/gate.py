"""The quality gate an INT8 graph must pass to replace fp32: its vectors stay close to fp32's, and
recognition on a labelled check set is as good.

Both are measured on photos the calibration never saw: ranges fitted on a set describe that set
best, so measuring on it would flatter the INT8 graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from instrec.errors import InstrecError
from instrec.training.metrics import one_shot

MIN_COSINE = 0.99  # mean cosine between a photo's INT8 and fp32 vectors
MAX_TOP1_DROP = 0.01  # 1-shot top-1 on the check set may be at most this much below fp32's
# A graph close on average may still move a few photos far, so the low tail is bounded too: the
# bound sits well under the tail of the shipped graph on ukbench-dev and COIL-100 (bench_int8.py's
# "cosine p1" column), so only a tail several times as far off as that one is refused.
LOW_QUANTILE = 0.01
MIN_LOW_COSINE = 0.97


def low_quantile(cosine: np.ndarray, quantile: float = LOW_QUANTILE) -> float:
    """The cosine every photo but the lowest ``quantile`` share reaches, leaving out at least the
    lowest one: on a small check set a single odd photo must not decide."""
    ranked = np.sort(cosine)
    return float(ranked[min(len(ranked) - 1, max(1, int(quantile * len(ranked))))])


@dataclass(frozen=True)
class Verdict:
    min_cosine: float  # the gate's bounds
    max_top1_drop: float
    min_low_cosine: float
    cosine_mean: float
    cosine_low: float  # low_quantile of the per-photo cosines
    cosine_min: float
    top1_fp32: float
    top1_int8: float
    failures: tuple[str, ...]  # each failed figure with its value and its bound; empty: passed

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **asdict(self), "failures": list(self.failures)}


@dataclass(frozen=True)
class Gate:
    min_cosine: float = MIN_COSINE
    max_top1_drop: float = MAX_TOP1_DROP
    min_low_cosine: float = MIN_LOW_COSINE

    def judge(self, fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, images: np.ndarray) -> Verdict:
        """``fp32``, ``int8``: unit vectors of the same check photos; ``labels``: their instances;
        ``images``: their order within an instance (each instance's first is its 1 shot)."""
        if len(np.unique(labels)) < 2 or len(np.unique(labels)) == len(labels):
            raise InstrecError("the check set needs at least 2 instances and one with 2 or more photos (a query)")
        cosine = np.sum(fp32 * int8, axis=1)
        low = low_quantile(cosine)
        before, after = one_shot(fp32, labels, images).top1, one_shot(int8, labels, images).top1
        failures = []
        if cosine.mean() < self.min_cosine:
            failures.append(f"mean cosine to fp32 is {cosine.mean():.4f}, below {self.min_cosine}")
        if low < self.min_low_cosine:
            failures.append(
                f"the lowest {LOW_QUANTILE:.0%} of per-photo cosines to fp32 reach down to {low:.4f}, below {self.min_low_cosine}"
            )
        if after < before - self.max_top1_drop - 1e-9:  # the tolerance: equal figures computed apart
            failures.append(f"1-shot top-1 is {after:.4f} against fp32's {before:.4f}, more than {self.max_top1_drop} lower")
        return Verdict(
            self.min_cosine,
            self.max_top1_drop,
            self.min_low_cosine,
            float(cosine.mean()),
            low,
            float(cosine.min()),
            before,
            after,
            tuple(failures),
        )
