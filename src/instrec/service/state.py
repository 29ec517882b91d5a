"""Per-app state and the one way blocking work leaves the event loop.

Everything that decodes an image, runs the model or touches SQLite goes through :func:`blocking`
(the default thread pool), :func:`inference` (at most ``inference_slots`` at once, so 8 clients do
not thrash 2 cores; the rest wait in a bounded queue, see :mod:`instrec.service.admission`) or
:func:`write` (one writer at a time per collection's catalog, which also holds an inference slot while it
embeds; the slots are the process's, shared by every collection).
Recognitions therefore run in parallel with enrolments, and the event loop stays free to answer
health checks and serve pages.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

from instrec.config import Config, ServiceConfig, usable_cores
from instrec.service.admission import InferenceGate
from instrec.service.auth import KeyRing
from instrec.service.collections import Collection, Collections
from instrec.service.errors import ApiError
from instrec.service.metrics import LibrarySize, Metrics

if TYPE_CHECKING:
    from instrec.recognizer import Recognizer

T = TypeVar("T")


# Requests waiting per inference slot by default: each waiter adds a model run's time to everyone's
# answer, and at this depth 32 clients still get a p95 within 2x of what 8 get (bench_service --overload).
QUEUED_PER_SLOT = 4


def resolve_max_queue(service: ServiceConfig, slots: int) -> int:
    """Requests that may wait for an inference slot: ``service.max_queue``, or (0) a few per slot."""
    return service.max_queue or QUEUED_PER_SLOT * slots


def resolve_inference_slots(service: ServiceConfig) -> int:
    """Concurrent model runs per process: ``service.inference_slots``, or (0) the cores shared among
    the worker processes, so that 8 clients do not thrash 2 cores."""
    if service.inference_slots:
        return service.inference_slots
    return max(1, usable_cores() // service.workers)


class ThumbnailCache:
    """A small thread-safe LRU of rendered thumbnails, bounded in bytes."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, int], data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


@dataclass
class ServiceState:
    config: Config
    keys: KeyRing
    inference_slots: int
    recognizer: "Recognizer | None" = None
    owns_recognizer: bool = False
    ready: bool = False
    started_at: float = field(default_factory=time.time)
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    metrics: Metrics = field(init=False)
    _inference: InferenceGate | None = None
    _collections: Collections | None = None

    def __post_init__(self) -> None:
        self.metrics = Metrics()

    async def library_sizes(self) -> dict[str, LibrarySize]:
        """Each open collection's size, for the metrics; none while starting or stopping."""
        return await self._collections.sizes() if self._collections is not None and self.ready else {}

    def start(self) -> None:
        """Create the limiters (needs the running event loop)."""
        service = self.config.service
        max_queue = resolve_max_queue(service, self.inference_slots)
        self._inference = InferenceGate(self.inference_slots, max_queue, service.deadline_ms, self.metrics)

    def open_collections(self, default: "Recognizer") -> None:
        """The collections, the default one being ``default`` (in the lifespan, once it is open)."""
        self._collections = Collections(self.config, default, self.recalibrate_if_changed)

    async def close_collections(self) -> None:
        if self._collections is not None:
            await self._collections.close()

    @property
    def collections(self) -> Collections:
        if self._collections is None or not self.ready:
            raise ApiError(503, "not_ready", "the service is starting or stopping; retry shortly")
        return self._collections

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Catalog reads, thumbnail rendering: off the event loop, default pool."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def inference(self, fn: Callable[..., T], *args: Any, kind: str = "recognize") -> T:
        """Model runs: ``inference_slots`` at once, or 503 when the queue is full or the wait too long."""
        assert self._inference is not None, "lifespan not started"
        async with self._inference.slot(kind):
            return await anyio.to_thread.run_sync(fn, *args)

    async def write(self, collection: Collection, fn: Callable[..., T], *args: Any, embeds: bool = False) -> T:
        """A collection's catalog writes one at a time; ``embeds`` also takes an inference slot (after
        the write lock)."""
        async with collection.writes:
            if embeds:
                result = await self.inference(fn, *args, kind="enroll")
            else:
                result = await anyio.to_thread.run_sync(fn, *args)
        self.recalibrate_if_changed(collection.recognizer)
        return result

    def recalibrate_if_changed(self, recognizer: "Recognizer") -> None:
        """Re-calibrate on a side thread once the gallery has changed materially (decision.auto_calibrate)."""
        if self.config.decision.auto_calibrate:
            recognizer.recalibrate_in_background()


async def service_state(request: Request) -> ServiceState:
    """The route dependency. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the
    thread pool, which cost every request a thread hop."""
    return request.app.state.service
