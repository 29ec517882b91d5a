"""Prometheus metrics: request counts and latency per route, recognition outcomes and scores, engine
time per stage, the inference queue and what admission control refused, index size.

Each app gets its own registry (several apps may live in one process, e.g. in tests). Routes are
labelled by their path template (``/v1/instances/{instance_id}``), never by the raw path, so a
client cannot blow up the label cardinality. Requests on a library are labelled by their collection
too, but only once the collection was opened (:data:`COLLECTION_KEY`): a name that names none stays
``""``, as do the service's own routes. With ``service.workers > 1`` each worker process
reports its own counters (scrape them per worker, or run one worker per container).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from instrec.service.errors import schema_path
from instrec.service.history import History

if TYPE_CHECKING:
    from instrec.recognizer import Recognizer
    from instrec.results import Recognition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
# Best-match scores are cosine similarities less a share of the rivals' (results.Match.score): fine steps
# where thresholds fall, so a drifting score distribution shows before the unknown rate moves.
# Where routes_collections.open_collection leaves the name of the collection a request was answered from.
COLLECTION_KEY = "instrec.collection"
SCORE_BUCKETS = (-0.2, 0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


class Metrics:
    def __init__(self, recognizer: Callable[[], "Recognizer | None"]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "instrec_http_requests", "HTTP requests answered.", ["method", "route", "status", "collection"], registry=r
        )
        self.latency = Histogram(
            "instrec_http_request_duration_seconds",
            "HTTP request latency (server side).",
            ["method", "route", "collection"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("instrec_http_requests_in_flight", "HTTP requests being served.", registry=r)
        # unknown rate = rate(outcome="unknown") / rate(all outcomes)
        self.recognitions = Counter("instrec_recognitions", "Images recognised, by outcome.", ["outcome"], registry=r)
        self.best_score = Histogram(
            "instrec_recognition_best_score",
            "Score of the best match per recognised image, by outcome.",
            ["outcome"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.recognize_stage = Histogram(
            "instrec_recognize_stage_seconds",
            "Engine time per recognised image, by stage (the answer's timing_ms).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "instrec_inference_queue_seconds",
            "Time waiting for an inference slot.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("instrec_inference_queue_depth", "Requests waiting for an inference slot.", registry=r)
        self.refused = Counter(
            "instrec_admission_refused", "Requests refused by admission control, by reason.", ["reason"], registry=r
        )
        self.enrolled_images = Counter("instrec_enrolled_images", "Images added to the gallery.", registry=r)
        r.register(_LibraryCollector(recognizer))
        self.history = History()

    def observe_recognitions(self, results: Iterable["Recognition"]) -> None:
        for result in results:
            outcome = "unknown" if result.unknown else "known"
            self.recognitions.labels(outcome).inc()
            best = result.matches[0].score if result.matches else None
            self.history.recognition(result.unknown, best)
            if best is not None:
                self.best_score.labels(outcome).observe(best)
            for stage, ms in result.timing_ms.items():  # stage names come from the engine, never the client
                self.recognize_stage.labels(stage).observe(ms / 1e3)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LibraryCollector:
    """Gallery size, read at scrape time from the catalog and the index."""

    def __init__(self, recognizer: Callable[[], "Recognizer | None"]):
        self._recognizer = recognizer

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        recognizer = self._recognizer()
        if recognizer is None:
            return
        library = recognizer.library
        counts = library.catalog.stats()
        info = library.index_info()
        for name, value in counts.items():
            yield GaugeMetricFamily(f"instrec_library_{name}", f"Enrolled {name} in the catalog.", value=value)
        yield GaugeMetricFamily("instrec_index_vectors", "Vectors in the search index.", value=info["vectors"])
        yield GaugeMetricFamily("instrec_index_bytes", "Memory held by the search index.", value=info["bytes"])
        ready = GaugeMetricFamily("instrec_index_info", "Index kind (label), always 1.", labels=["kind"])
        ready.add_metric([str(info["kind"])], 1)
        yield ready


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = _route_template(scope)
            method = scope.get("method", "GET")
            collection = scope.get(COLLECTION_KEY, "")
            self.metrics.requests.labels(method, route, str(status), collection).inc()
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(method, route, collection).observe(elapsed)
            if _is_api_work(route):
                self.metrics.history.request(elapsed)


def _is_api_work(route: str) -> bool:
    """Requests the admin page's traffic and latency plots show: the API's, not pages, static files,
    probes, scrapes or the monitoring reads (the admin page's own polling would dominate a quiet minute)."""
    return route.startswith("/v1/") and not route.startswith("/v1/stats")


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):  # a route matched: the schema's template, prefix included, for the API's
        return schema_path(scope["app"], scope["path"]) or path
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return "<unmatched>"
