"""The REST API and the web page, in one FastAPI app.

``create_app(config)`` builds the app; the :class:`~instrec.recognizer.Recognizer` is created once
in the lifespan (or passed in, then the caller keeps ownership) and closed on shutdown. ``run``
serves it with uvicorn; with ``service.workers > 1`` every worker process builds its own app from
the same ``INSTREC_*`` environment (the whole config is exported there first).

Layers, outermost first: metrics -> arrival stamp (for the inference deadline) -> security headers
-> auth gate (401 before the body is read) -> rate limit (429, when ``service.rate_limit_per_s`` is
set) -> body limit (413 while reading) -> FastAPI (routes, role checks, error handlers). Admission
to inference (503 when the queue is full or the wait too long) is decided in
:mod:`instrec.service.state` once the upload has been read.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import instrec
from instrec.config import DEFAULT_COLLECTION, ENV_PREFIX, Config
from instrec.errors import ConfigError
from instrec.service import routes_admin, routes_collections, routes_instances, routes_recognize
from instrec.service.admission import RateLimit, StampArrival
from instrec.service.auth import AuthGate, KeyRing, check_auth_config
from instrec.service.errors import error_responses, install_error_handlers
from instrec.service.limits import BodyLimit
from instrec.service.metrics import MetricsMiddleware
from instrec.service.redoc import add_redoc
from instrec.service.state import ServiceState, resolve_inference_slots

if TYPE_CHECKING:
    from instrec.recognizer import Recognizer

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DOCS_ASSETS_URL = "/docs-assets"  # Swagger UI and ReDoc files, served from the fastapi-offline package
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# The docs pages: Swagger UI's page has one inline script and both UIs inline their styles; nothing may
# come from elsewhere (service.redoc serves ReDoc's bundle without its CDN logo).
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

DESCRIPTION = """\
Recognise specific instances from 1-3 reference photos each, or answer **unknown**.

* Enrol: `POST /v1/instances` (multipart `label`, optional `metadata` JSON object, 1-3 `images`).
* Recognise: `POST /v1/recognize` (multipart `image`, or the raw image bytes) -> top-k matches.
* Collections: every route on the library also answers at `/v1/collections/{collection}/...` from that
  collection (its own gallery and threshold); `/v1/...` is the `default` collection. `GET /v1/collections`
  lists them, `PUT` / `DELETE /v1/collections/{collection}` (admin) create and delete one.
* Keys: send `X-API-Key: <key>` (or `Authorization: Bearer <key>`); reads need a read or admin key,
  writes an admin key; a key configured as `KEY@shoes+bags` reaches those collections only.
* Errors always look like `{"error": {"code": "...", "message": "...", "status": 400}}`.
"""


def create_app(config: Config, recognizer: "Recognizer | None" = None) -> FastAPI:
    """Build the service over every collection of ``config.home``. Raises :class:`ConfigError` if auth
    is on without any key, or if ``config.collection`` names one collection."""
    check_whole_home(config)
    keys = KeyRing.from_config(config.service)
    state = ServiceState(
        config=config,
        keys=keys,
        recognizer=recognizer,
        owns_recognizer=recognizer is None,
        inference_slots=resolve_inference_slots(config.service),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        if state.recognizer is None:
            from instrec.recognizer import Recognizer

            state.recognizer = await anyio.to_thread.run_sync(Recognizer, config)
        state.open_collections(state.recognizer)
        try:
            await anyio.to_thread.run_sync(_warm_up, state.recognizer)
            await anyio.to_thread.run_sync(state.recalibrate_if_changed, state.recognizer)
            state.ready = True
            log.info(
                "instrec service ready (auth %s, %d inference slot(s))", "on" if keys.enabled else "OFF", state.inference_slots
            )
            yield
        finally:
            state.ready = False
            await state.close_collections()
            if state.owns_recognizer and state.recognizer is not None:
                await anyio.to_thread.run_sync(state.recognizer.close)
                state.recognizer = None

    # /docs and /redoc load their scripts from this app, not a CDN: users run it on offline networks.
    app = FastAPIOffline(
        title="instrec",
        version=instrec.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        redoc_url=None,
    )
    add_redoc(app, "/redoc", DOCS_ASSETS_URL)
    app.state.service = state
    install_error_handlers(app)
    # Every route on a library answers for the default collection under /v1 and for any other under
    # /v1/collections/{collection} (whose dependency declares and checks the name).
    mounts = [("/v1", [], {}), (routes_collections.PREFIX, [Depends(routes_collections.collection_name)], error_responses(404))]
    for prefix, scope, responses in mounts:
        for router in (routes_recognize.router, routes_instances.router, routes_admin.library_router):
            app.include_router(router, prefix=prefix, dependencies=scope, responses=responses)
    app.include_router(routes_collections.router)
    app.include_router(routes_admin.router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/admin", include_in_schema=False)
    async def admin() -> FileResponse:  # the page is open; the history it plots needs an admin key
        return FileResponse(STATIC_DIR / "admin.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # add_middleware wraps: the last added is the outermost.
    service = config.service
    app.add_middleware(BodyLimit, limit=service.max_upload_bytes)
    if service.rate_limit_per_s:
        app.add_middleware(RateLimit, rate=service.rate_limit_per_s, metrics=state.metrics)
    app.add_middleware(AuthGate, keys=keys, also=frozenset({"/metrics"} if service.metrics_auth else ()))
    app.add_middleware(SecurityHeaders, policies={"/": PAGE_CSP, "/admin": PAGE_CSP, "/docs": DOCS_CSP, "/redoc": DOCS_CSP})
    app.add_middleware(StampArrival)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def check_whole_home(config: Config) -> None:
    """A service answers every collection of its home: one named in the settings is a mistake."""
    if config.collection != DEFAULT_COLLECTION:
        raise ConfigError(
            f"the service answers every collection of {config.home} (/v1/collections/NAME/...): "
            f"leave collection unset rather than {config.collection!r}"
        )


def _warm_up(recognizer: "Recognizer") -> None:
    """Load the model, open the library and run one inference before taking traffic."""
    from PIL import Image

    recognizer.stats()
    recognizer.embedder.embed([Image.new("RGB", (224, 224), (128, 128, 128))])


class SecurityHeaders:
    """``nosniff`` and ``no-referrer`` on every response (uploads are never echoed as HTML), and a
    Content-Security-Policy on the pages named in ``policies`` (path -> policy)."""

    def __init__(self, app: ASGIApp, policies: Mapping[str, str] | None = None):
        self.app = app
        self.policies = {path: policy.encode() for path, policy in (policies or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
        if scope["path"] in self.policies:
            added.append((b"content-security-policy", self.policies[scope["path"]]))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in added:
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- serving ---------------------------------------------------------------------------------------
def config_environ(config: Config) -> dict[str, str]:
    """The whole config as ``INSTREC_*`` variables: ``Config.load()`` in a worker rebuilds it."""
    env: dict[str, str] = {}

    def add(prefix: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if isinstance(value, dict):
                add(f"{prefix}{name.upper()}__", value)
            else:
                env[f"{prefix}{name.upper()}"] = _env_value(value)

    add(ENV_PREFIX, config.model_dump())
    return env


def _env_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(_env_value(v) for v in value)
    return str(value)


def tune_for_serving(config: Config) -> Config:
    """Threading for a server: parallelism comes from concurrent requests, not from within one.

    Unless ``runtime.threads`` was set explicitly, each model run and each FAISS search (the
    Recognizer applies the setting to both) uses one thread while ``service.inference_slots`` runs
    go side by side: FAISS's OpenMP pool would otherwise wake every core for each single-query
    search (``benchmarks/bench_search_threads.py``: 0.02 ms -> 16 ms on the busy 2-core box).
    """
    if config.runtime.threads == 0:
        config = config.with_overrides({"runtime.threads": 1})
    return config


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: config from ``INSTREC_*`` only."""
    return create_app(tune_for_serving(Config.load()))


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound (not yet listening), or SystemExit naming the address.

    Bound before anything slow happens: the model loads in the lifespan, and uvicorn would only find
    a busy port once it had loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart while old connections linger
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SystemExit(
            f"instrec serve: cannot listen on {host}:{port}: {error.strerror or error}. "
            "Is another server running there? Choose another port with --port or service.port."
        ) from None
    return sock


def run(config: Config) -> None:
    """``instrec serve``: serve the API and the page with uvicorn (blocks until stopped)."""
    import uvicorn

    try:
        check_whole_home(config)
        check_auth_config(config.service)
    except ConfigError as error:
        raise SystemExit(f"instrec serve: {error}") from None
    service = config.service
    sock = listening_socket(service.host, service.port)
    port = sock.getsockname()[1]  # the one the OS chose for service.port=0
    if not service.auth and service.host not in LOOPBACK:
        log.warning("serving WITHOUT authentication on %s: anyone who can reach it can change the library", service.host)
    print(
        f"instrec: serving {config.home} on http://{service.host}:{port}/ "
        f"(API docs at /docs; auth {'on' if service.auth else 'OFF'}; {service.workers} worker(s))",
        file=sys.stderr,
    )
    options: dict[str, Any] = {
        "host": service.host,
        "port": port,
        "log_level": "info",
        "server_header": False,
        "timeout_keep_alive": 5,
    }
    if service.workers > 1:
        # uvicorn's supervisor binds again itself before it starts the workers (and their models).
        sock.close()
        os.environ.update(config_environ(config))
        uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=service.workers, **options)
        return
    server = uvicorn.Server(uvicorn.Config(create_app(tune_for_serving(config)), **options))
    with sock:
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on, as uvicorn.run swallows it
            pass
    if not server.started:
        raise SystemExit(1)  # uvicorn has logged why (the lifespan failed)
