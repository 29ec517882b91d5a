"""Work ahead on a few threads, results in order: a bounded pipeline for bulk jobs.

The stages worth overlapping here (ONNX Runtime, OpenCV, BLAS, image decoding) let go of the GIL,
so threads keep every core busy while the caller does the part that must stay in order and on one
thread (writing the catalog).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

WINDOW_PER_WORKER = 2  # items started ahead per worker: enough to hide one item's spread, bounded memory


def ahead(work: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[tuple[Item, Future[Result]]]:
    """Yield ``(item, future of work(item))`` in the order of ``items``, with at most ``workers`` x
    WINDOW_PER_WORKER items started and not yet yielded. ``future.result()`` raises what ``work`` raised.
    Stopping early (break, an exception) waits for the started items and starts no more."""
    pending: deque[tuple[Item, Future[Result]]] = deque()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="instrec-ahead") as pool:
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= max(1, workers) * WINDOW_PER_WORKER:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
