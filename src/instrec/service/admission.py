"""Admission control: what an overloaded service refuses, so that what it accepts is answered in time.

Requests needing inference wait in one FIFO queue for ``inference_slots``. Without a bound, a burst
makes every client wait longer and longer and none is ever told to back off. So:

* a request that finds ``service.max_queue`` others already waiting is refused at once with 503
  ``overloaded`` (it costs the server nothing but the upload);
* a request still waiting ``service.deadline_ms`` after it arrived (upload included: the client's
  clock started then) leaves the queue with 503 ``deadline_exceeded`` instead of being run for a
  client that has likely given up;
* optionally, ``service.rate_limit_per_s`` caps each API key (or each client address when auth is
  off) with 429 ``rate_limited``, so one caller cannot fill the queue on its own.

Every refusal carries ``Retry-After``: the queue's expected drain time, whole seconds, at least one.
Health checks, readiness and metrics never pass through the queue.
"""

from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import AsyncIterator, Callable

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from instrec.service.auth import PROTECTED_PREFIX, key_from_headers
from instrec.service.errors import ApiError, error_response
from instrec.service.metrics import Metrics

# Weight of the newest run in the moving average of slot hold times: recent enough to follow a change
# of load, smooth enough that one slow image does not swing Retry-After.
_RUN_TIME_WEIGHT = 0.2
# Clients tracked by the rate limiter before idle ones are forgotten (only reachable without auth,
# where clients are told apart by address).
_MAX_TRACKED_CLIENTS = 10_000


# When the current request arrived (time.monotonic), stamped by :class:`StampArrival`; unset outside a
# request, where the deadline counts from joining the queue.
_arrived: ContextVar[float | None] = ContextVar("instrec_request_arrived", default=None)


class StampArrival:
    """ASGI middleware: note when each request arrived, for the inference deadline."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _arrived.set(time.monotonic())
        try:
            await self.app(scope, receive, send)
        finally:
            _arrived.reset(token)


def _retry_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class InferenceGate:
    """``inference_slots`` model runs at once; a bounded, deadline-limited FIFO queue for the rest."""

    def __init__(self, slots: int, max_queue: int, deadline_ms: int, metrics: Metrics):
        self.slots = slots
        self.max_queue = max_queue
        self.deadline_ms = deadline_ms
        self.deadline_s = deadline_ms / 1e3 if deadline_ms else None  # None: wait as long as it takes
        self.metrics = metrics
        self.waiting = 0
        self._limiter = anyio.CapacityLimiter(slots)
        self._mean_run_s: float | None = None

    def retry_after(self) -> dict[str, str]:
        """When the queue as it stands now should have drained."""
        if self._mean_run_s is None:
            return _retry_header(1)
        return _retry_header((self.waiting + 1) * self._mean_run_s / self.slots)

    @asynccontextmanager
    async def slot(self, kind: str) -> AsyncIterator[None]:
        """Hold an inference slot for the body of the ``async with``, or raise a 503 :class:`ApiError`."""
        queued = time.perf_counter()
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._wait(kind)
        running = time.perf_counter()
        self.metrics.queue_wait.labels(kind).observe(running - queued)
        try:
            yield
        finally:
            self._limiter.release()
            self._ran(time.perf_counter() - running)

    async def _wait(self, kind: str) -> None:
        if self.waiting >= self.max_queue:
            self.metrics.refused.labels("overloaded").inc()
            raise ApiError(
                503,
                "overloaded",
                f"the server is busy ({self.waiting} requests already waiting for inference, service.max_queue); retry later",
                self.retry_after(),
            )
        self.waiting += 1
        self.metrics.queue_depth.inc()
        patience = None
        if self.deadline_s is not None:
            patience = self.deadline_s - (time.monotonic() - (_arrived.get() or time.monotonic()))
        try:
            with anyio.move_on_after(patience) as waited:
                await self._limiter.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queue_depth.dec()
        if waited.cancelled_caught:
            self.metrics.refused.labels("deadline_exceeded").inc()
            raise ApiError(
                503,
                "deadline_exceeded",
                f"no inference slot came free within {self.deadline_ms} ms of arrival (service.deadline_ms); retry later",
                self.retry_after(),
            )

    def _ran(self, seconds: float) -> None:
        previous = self._mean_run_s
        self._mean_run_s = seconds if previous is None else previous + _RUN_TIME_WEIGHT * (seconds - previous)


class RateLimit:
    """ASGI middleware: a token bucket per API key (per client address without auth) on ``/v1/``
    requests; bursts of up to one second's worth, 429 with Retry-After beyond."""

    def __init__(self, app: ASGIApp, rate: float, metrics: Metrics, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.rate = rate
        self.burst = max(1.0, rate)
        self.metrics = metrics
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when counted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        wait = self._take(self._caller(scope))
        if wait:
            self.metrics.refused.labels("rate_limited").inc()
            response = error_response(
                429,
                "rate_limited",
                f"more than {self.rate:g} requests per second (service.rate_limit_per_s)",
                _retry_header(wait),
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> str:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = key_from_headers(headers)
        if key:
            return "key:" + key
        client = scope.get("client")
        return "addr:" + (client[0] if client else "")

    def _take(self, caller: str) -> float:
        """Spend one token of ``caller``'s bucket: 0, or the seconds until one is there."""
        now = self.clock()
        tokens, then = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1, now)
        if len(self._buckets) > _MAX_TRACKED_CLIENTS:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes no answer."""
        full = [c for c, (tokens, then) in self._buckets.items() if tokens + (now - then) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]
