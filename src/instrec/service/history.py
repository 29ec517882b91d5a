"""Per-minute aggregates of the last hours, in memory, for the admin page's plots over time: Prometheus
keeps the long view, this one needs nothing else running. Bounded: a fixed number of minutes is kept."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Best-match scores are counted in these bins (results.Match.score lies in [-1, 1]).
SCORE_BINS = np.linspace(-1.0, 1.0, 41)
KEPT_MINUTES = 360


@dataclass
class _Minute:
    start: int  # unix seconds, a multiple of 60
    # Kept only while the minute runs: an ended minute keeps its summary (memory bounded by the ring alone).
    latencies_ms: list[float] = field(default_factory=list)
    known: int = 0
    unknown: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(len(SCORE_BINS) - 1, np.int64))
    summary: dict[str, Any] | None = None

    def end(self) -> None:
        self.summary, self.latencies_ms = self.to_dict(), []

    def to_dict(self) -> dict[str, Any]:
        if self.summary is not None:
            return self.summary
        latency = np.asarray(self.latencies_ms)
        p50, p95 = (None, None) if not len(latency) else (float(np.percentile(latency, 50)), float(np.percentile(latency, 95)))
        recognised = self.known + self.unknown
        return {
            "start": self.start,
            "requests": len(latency),
            "latency_ms_p50": p50,
            "latency_ms_p95": p95,
            "recognitions": recognised,
            "unknown_rate": self.unknown / recognised if recognised else None,
            "score_counts": self.scores.tolist(),
        }


class History:
    def __init__(self, minutes: int = KEPT_MINUTES, clock=time.time):
        self._minutes: deque[_Minute] = deque(maxlen=minutes)
        self._clock = clock
        self._lock = threading.Lock()  # requests finish on the event loop, recognitions in worker threads

    def _now(self) -> _Minute:
        start = int(self._clock()) // 60 * 60
        if not self._minutes or self._minutes[-1].start != start:
            if self._minutes:
                self._minutes[-1].end()
            self._minutes.append(_Minute(start))
        return self._minutes[-1]

    def request(self, latency_s: float) -> None:
        with self._lock:
            self._now().latencies_ms.append(latency_s * 1e3)

    def recognition(self, unknown: bool, best_score: float | None) -> None:
        with self._lock:
            minute = self._now()
            if unknown:
                minute.unknown += 1
            else:
                minute.known += 1
            if best_score is not None:
                minute.scores[np.clip(np.searchsorted(SCORE_BINS, best_score, "right") - 1, 0, len(minute.scores) - 1)] += 1

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            minutes = [m.to_dict() for m in self._minutes]
        return {"minute_s": 60, "score_bins": SCORE_BINS.tolist(), "minutes": minutes}
