"""App wiring: lifespan, docs, the page, security headers, ``run`` and the worker environment."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from instrec.config import Config
from instrec.errors import ConfigError
from instrec.service.app import app_from_env, config_environ, create_app, run

from .helpers import TestClient, enrol, recognize


def test_lifespan_builds_the_recognizer_and_closes_it(tmp_path, photos, embedder, monkeypatch):
    import instrec.recognizer

    built = []
    real = instrec.recognizer.Recognizer

    class Tracked(real):  # the real class, with the session's embedder so no model is reloaded
        def __init__(self, config):
            super().__init__(config, embedder=embedder)
            built.append(self)

        def close(self):
            self.closed = True
            super().close()

    monkeypatch.setattr(instrec.recognizer, "Recognizer", Tracked)
    config = Config.load(home=tmp_path / "lib", overrides={"service.auth": "false"})
    app = create_app(config)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert enrol(client, "Made in lifespan", photos["coins"]).status_code == 201
    assert len(built) == 1 and built[0].closed
    assert app.state.service.recognizer is None
    assert (tmp_path / "lib" / "catalog.sqlite").exists()
    assert (tmp_path / "lib" / "index" / "state.json").exists()  # the index was saved on close


def test_a_given_recognizer_is_not_closed(make_recognizer):
    recognizer = make_recognizer()
    with TestClient(create_app(recognizer.config, recognizer)) as client:
        assert client.get("/healthz").status_code == 200
    assert recognizer.gallery.count() == 0  # still usable


def test_not_ready_outside_the_lifespan(make_recognizer):
    recognizer = make_recognizer()
    client = TestClient(create_app(recognizer.config, recognizer))  # lifespan not entered
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    assert client.get("/healthz").json()["ready"] is False


def test_docs_and_openapi(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/instances",
        "/v1/instances/{instance_id}",
        "/v1/instances/{instance_id}/images",
        "/v1/recognize",
        "/v1/recognize/batch",
        "/v1/images/{image_id}/thumbnail",
        "/v1/images/{image_id}",
        "/v1/stats",
        "/v1/calibrate",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert set(paths["/v1/instances/{instance_id}"]) == {"get", "patch", "delete"}
    body = paths["/v1/recognize"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(body)
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]


def test_the_page_is_served_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    assert "/static/app.js" in html and "/static/style.css" in html
    assert 'capture="environment"' in html  # camera capture on phones


def test_config_environ_round_trips(tmp_path):
    config = Config.load(
        home=tmp_path,
        overrides={
            "service.admin_keys": "k1,k2",
            "service.workers": "3",
            "index.backend": "flat",
            "tuning.rerank.ratio": "0.7",
            "decision.threshold": "0.5",
            "service.auth": "true",
        },
    )
    env = config_environ(config)
    assert env["INSTREC_SERVICE__ADMIN_KEYS"] == "k1,k2" and env["INSTREC_HOME"] == str(tmp_path)
    assert env["INSTREC_TUNING__RERANK__RATIO"] == "0.7"
    for built in (config, Config.load(home=tmp_path)):
        with pytest.MonkeyPatch.context() as patch:
            for name, value in config_environ(built).items():
                patch.setenv(name, value)
            assert Config.load() == built


def test_app_from_env_builds_from_instrec_variables(tmp_path, monkeypatch):
    for name, value in config_environ(Config.load(home=tmp_path, overrides={"service.auth": "false"})).items():
        monkeypatch.setenv(name, value)
    app = app_from_env()
    assert app.state.service.config.home == tmp_path and not app.state.service.keys.enabled


def test_run_single_worker_serves_on_the_socket_it_bound(monkeypatch, tmp_path):
    calls = []
    import uvicorn

    def fake_run(server, sockets=None):
        calls.append((server.config, sockets[0].getsockname()))
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    config = Config.load(home=tmp_path, overrides={"service.auth": "false", "service.host": "127.0.0.1", "service.port": "0"})
    run(config)
    uvicorn_config, (host, port) = calls[0]
    assert host == "127.0.0.1" and port > 0 and uvicorn_config.port == port  # port 0: the one the OS chose
    assert uvicorn_config.workers == 1
    assert uvicorn_config.app.state.service.config.runtime.threads == 1  # "auto": one thread per model run and search


def test_run_on_a_busy_port_exits_before_building_anything(monkeypatch, tmp_path):
    import instrec.service.app

    built = []
    monkeypatch.setattr(instrec.service.app, "create_app", lambda *a, **k: built.append(a))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = Config.load(home=tmp_path, overrides={"service.auth": "false", "service.port": str(port)})
        with pytest.raises(SystemExit) as exited:
            run(config)
    message = str(exited.value.code)
    assert f"cannot listen on 127.0.0.1:{port}" in message and "--port" in message  # SystemExit(str): exit status 1
    assert built == []  # nothing loaded: no app, no model


def test_explicit_runtime_threads_are_kept(tmp_path):
    from instrec.service.app import tune_for_serving

    config = Config.load(home=tmp_path, overrides={"runtime.threads": "2"})
    assert tune_for_serving(config).runtime.threads == 2


def test_run_several_workers_exports_the_config(monkeypatch, tmp_path):
    calls = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.setattr(os, "environ", dict(os.environ))
    config = Config.load(
        home=tmp_path, overrides={"service.workers": "2", "service.admin_keys": "secret", "service.port": "8124"}
    )
    run(config)
    target, options = calls[0]
    assert target == "instrec.service.app:app_from_env" and options["factory"] and options["workers"] == 2
    assert os.environ["INSTREC_SERVICE__ADMIN_KEYS"] == "secret"
    assert Config.load() == config  # what each worker will build


def test_inference_does_not_block_the_event_loop(make_recognizer, photos):
    """While a (slow) recognition runs in a thread, health checks still answer at once."""
    recognizer = make_recognizer()
    real = recognizer.recognize
    started = threading.Event()

    def slow(*args, **kwargs):
        started.set()
        time.sleep(1.0)
        return real(*args, **kwargs)

    recognizer.recognize = slow
    with TestClient(create_app(recognizer.config, recognizer)) as client:
        worker = threading.Thread(target=lambda: recognize(client, photos["coffee"]))
        worker.start()
        assert started.wait(5)
        t0 = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/instances").status_code == 200
        elapsed = time.perf_counter() - t0
        worker.join()
    assert elapsed < 0.5


@pytest.mark.parametrize("slots", [1, 3])
def test_inference_slots_setting_bounds_concurrent_model_runs(make_recognizer, photos, slots):
    recognizer = make_recognizer(**{"service.inference_slots": str(slots)})
    real = recognizer.recognize
    lock = threading.Lock()
    running, peak = [0], [0]

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    recognizer.recognize = counted
    with TestClient(create_app(recognizer.config, recognizer)) as client:
        assert client.get("/v1/stats").json()["service"]["inference_slots"] == slots
        threads = [threading.Thread(target=lambda: recognize(client, photos["clock"])) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert peak[0] == slots


def test_inference_slots_default_to_the_cores_shared_among_workers(tmp_path):
    from instrec.service.state import resolve_inference_slots

    cores = len(os.sched_getaffinity(0))
    assert resolve_inference_slots(Config().service) == cores
    assert resolve_inference_slots(Config.load(overrides={"service.workers": "10000"}).service) == 1
    env = {"INSTREC_SERVICE__INFERENCE_SLOTS": "5", "INSTREC_SERVICE__AUTH": "false", "INSTREC_HOME": str(tmp_path)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert app_from_env().state.service.inference_slots == 5  # what each worker process builds


@pytest.mark.parametrize(
    "setting, value", [("service.inference_slots", "-1"), ("service.inference_slots", "two"), ("service.workers", "0")]
)
def test_bad_service_settings_are_refused(setting, value):
    with pytest.raises(ConfigError, match=setting.split(".")[1]):
        Config.load(overrides={setting: value})
