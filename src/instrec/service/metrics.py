"""Prometheus metrics: request counts and latency per route, recognition outcomes and scores, engine
time per stage, the inference queue and what admission control refused, and the size of each open
collection's gallery and index.

Each app gets its own registry (several apps may live in one process, e.g. in tests). Routes are
labelled by their path template (``/v1/instances/{instance_id}``), never by the raw path, so a
client cannot blow up the label cardinality. Requests on a library are labelled by their collection
too, but only once the collection was opened (:data:`COLLECTION_KEY`): a name that names none stays
``""``, as do the service's own routes. With ``service.workers > 1`` each worker process
reports its own counters (scrape them per worker, or run one worker per container).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

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
    def __init__(self) -> None:
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

    def render(self, sizes: Mapping[str, LibrarySize] | None = None) -> bytes:
        """The metrics, with the gallery gauges of the collections in ``sizes`` (read by the caller:
        only it can keep a collection from being deleted while it is read)."""
        galleries = CollectorRegistry(auto_describe=True)
        galleries.register(_LibraryCollector(sizes or {}))
        return generate_latest(self.registry) + generate_latest(galleries)


@dataclass(frozen=True)
class LibrarySize:
    """What one collection holds, read for a scrape: catalog counts and the index's size and kind."""

    counts: Mapping[str, int]
    vectors: int
    bytes: int
    kind: str

    @classmethod
    def of(cls, recognizer: "Recognizer") -> "LibrarySize":
        info = recognizer.library.index_info()
        return cls(recognizer.library.catalog.stats(), info["vectors"], info["bytes"], str(info["kind"]))


class _LibraryCollector:
    """Gallery size per collection, labelled by its name."""

    def __init__(self, sizes: Mapping[str, LibrarySize]):
        self._sizes = sizes

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}

        def family(name: str, help_text: str, *labels: str) -> GaugeMetricFamily:
            return families.setdefault(name, GaugeMetricFamily(name, help_text, labels=[*labels, "collection"]))

        for collection, size in self._sizes.items():
            for name, value in size.counts.items():
                family(f"instrec_library_{name}", f"Enrolled {name} in the catalog.").add_metric([collection], value)
            family("instrec_index_vectors", "Vectors in the search index.").add_metric([collection], size.vectors)
            family("instrec_index_bytes", "Memory held by the search index.").add_metric([collection], size.bytes)
            family("instrec_index_info", "Index kind (label), always 1.", "kind").add_metric([size.kind, collection], 1)
        yield from families.values()


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
