"""Admission control: a bounded inference queue (503 overloaded), a deadline on the wait (503
deadline_exceeded), per-key rate limits (429), and health checks that never wait behind inference."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from instrec.config import Config
from instrec.errors import ConfigError
from instrec.service.admission import RateLimit
from instrec.service.app import create_app
from instrec.service.metrics import Metrics

from .helpers import TestClient, assert_error, recognize
from .test_metrics import sample


class Held:
    """Recognitions that block inside their inference slot until :meth:`release` (no timing guesses)."""

    def __init__(self, recognizer: Any):
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        real = recognizer.recognize

        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.release()
            assert self.gate.wait(30), "the test never released the recognition"
            return real(*args, **kwargs)

        recognizer.recognize = held
        self.threads: list[threading.Thread] = []
        self.answers: list[Any] = []

    def send(self, client: TestClient, image: bytes) -> None:
        thread = threading.Thread(target=lambda: self.answers.append(recognize(client, image)))
        thread.start()
        self.threads.append(thread)

    def release(self) -> list[int]:
        self.gate.set()
        for thread in self.threads:
            thread.join(30)
        return sorted(answer.status_code for answer in self.answers)


@pytest.fixture
def held_client(make_recognizer: Callable[..., Any]) -> Iterator[Callable[..., tuple[TestClient, Held]]]:
    opened: list[tuple[TestClient, Held]] = []

    def make(**overrides: str) -> tuple[TestClient, Held]:
        recognizer = make_recognizer(**overrides)
        held = Held(recognizer)
        client = TestClient(create_app(recognizer.config, recognizer))
        client.__enter__()
        opened.append((client, held))
        return client, held

    yield make
    for client, held in opened:
        held.release()
        client.__exit__(None, None, None)


def wait_for_queue(client: TestClient, depth: int) -> None:
    give_up = time.monotonic() + 10
    while sample(client.get("/metrics").text, "instrec_inference_queue_depth") != depth:
        assert time.monotonic() < give_up, f"the queue never reached {depth}"
        time.sleep(0.01)


def test_a_request_beyond_max_queue_is_refused_at_once(held_client, photos):
    client, held = held_client(**{"service.inference_slots": "1", "service.max_queue": "1"})
    held.send(client, photos["clock"])  # runs, holding the only slot
    assert held.entered.acquire(timeout=10)
    held.send(client, photos["clock"])  # waits: the queue is now full
    wait_for_queue(client, 1)

    refused = recognize(client, photos["clock"])  # answered while the slot is still held
    error = assert_error(refused, 503, "overloaded")
    assert "service.max_queue" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1

    assert held.release() == [200, 200]  # the running and the queued one are both answered
    text = client.get("/metrics").text
    assert sample(text, "instrec_admission_refused_total", reason="overloaded") == 1
    assert sample(text, "instrec_inference_queue_depth") == 0


def test_a_request_waiting_past_the_deadline_is_dropped(held_client, photos):
    client, held = held_client(**{"service.inference_slots": "1", "service.max_queue": "4", "service.deadline_ms": "50"})
    held.send(client, photos["coins"])
    assert held.entered.acquire(timeout=10)

    late = recognize(client, photos["coins"])  # the slot stays held far past the deadline
    assert_error(late, 503, "deadline_exceeded")
    assert int(late.headers["retry-after"]) >= 1

    assert held.release() == [200]
    assert recognize(client, photos["coins"]).status_code == 200  # the dropped request left no slot taken
    assert sample(client.get("/metrics").text, "instrec_admission_refused_total", reason="deadline_exceeded") == 1


def test_health_readiness_and_metrics_answer_while_every_slot_is_busy(held_client, photos):
    client, held = held_client(**{"service.inference_slots": "1", "service.max_queue": "4", "service.deadline_ms": "0"})
    held.send(client, photos["horse"])
    assert held.entered.acquire(timeout=10)
    held.send(client, photos["horse"])
    wait_for_queue(client, 1)

    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/instances").status_code == 200  # catalog reads do not queue either
    assert held.answers == []  # all of the above answered while both recognitions were still held

    assert held.release() == [200, 200]


@pytest.mark.parametrize(
    "setting, value",
    [("service.max_queue", "-1"), ("service.deadline_ms", "-5"), ("service.rate_limit_per_s", "-1")],
)
def test_bad_admission_settings_are_refused(setting, value):
    with pytest.raises(ConfigError, match=setting.split(".")[1]):
        Config.load(overrides={setting: value})


# -- rate limit -----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rate_limited_app(rate: float, clock: Clock) -> TestClient:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/v1/thing", ok), Route("/healthz", ok)])
    return TestClient(RateLimit(inner, rate=rate, metrics=Metrics(), clock=clock))


def test_rate_limit_allows_a_second_of_burst_then_429_until_tokens_refill():
    clock = Clock()
    client = rate_limited_app(2, clock)
    key = {"X-API-Key": "k1"}
    assert [client.get("/v1/thing", headers=key).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/v1/thing", headers=key)
    assert_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "1"
    assert client.get("/v1/thing", headers={"X-API-Key": "k2"}).status_code == 200  # each key its own bucket
    assert client.get("/healthz", headers=key).status_code == 200  # only the API is limited
    clock.now += 0.5
    assert client.get("/v1/thing", headers=key).status_code == 200
    assert client.get("/v1/thing", headers=key).status_code == 429


def test_rate_limit_through_the_service(make_client):
    client = make_client(**{"service.rate_limit_per_s": "0.01"})  # one request, then one per 100 s
    assert client.get("/v1/instances").status_code == 200
    refused = client.get("/v1/instances")
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 60
    assert client.get("/healthz").status_code == 200
    assert sample(client.get("/metrics").text, "instrec_admission_refused_total", reason="rate_limited") == 1


def test_the_queue_bound_defaults_to_a_few_requests_per_inference_slot():
    from instrec.service.state import QUEUED_PER_SLOT, resolve_max_queue

    service = Config.load().service
    assert resolve_max_queue(service, 3) == 3 * QUEUED_PER_SLOT > 0
    assert resolve_max_queue(Config.load(overrides={"service.max_queue": "5"}).service, 3) == 5
