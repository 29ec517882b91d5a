"""instrec.ahead: work started ahead on threads, answered in order, never more than a window ahead."""

from __future__ import annotations

import threading
import time

import pytest

from instrec.ahead import WINDOW_PER_WORKER, ahead


def test_results_come_in_the_order_of_the_items_whatever_order_they_finish_in():
    def slow_for_small(n: int) -> int:
        time.sleep(0.002 * (10 - n))
        return n * n

    assert [(item, future.result()) for item, future in ahead(slow_for_small, range(10), workers=3)] == [
        (n, n * n) for n in range(10)
    ]


def test_an_items_exception_is_raised_where_its_result_is_asked_for_and_the_others_still_come():
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    seen = []
    for item, future in ahead(work, range(5), workers=2):
        try:
            seen.append(future.result())
        except ValueError:
            seen.append(None)
    assert seen == [0, 1, None, 3, 4]


def test_no_more_than_the_window_is_started_before_the_caller_takes_results():
    started, lock = [], threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        return n

    items = ahead(work, range(100), workers=2)
    next(items)
    time.sleep(0.05)
    assert len(started) == 2 * WINDOW_PER_WORKER
    items.close()  # stopping early starts no more
    assert len(started) == 2 * WINDOW_PER_WORKER


@pytest.mark.parametrize("workers", [0, 1])
def test_fewer_than_one_worker_means_one(workers):
    assert [f.result() for _, f in ahead(lambda n: n + 1, [1, 2, 3], workers)] == [2, 3, 4]
