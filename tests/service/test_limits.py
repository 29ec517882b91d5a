"""Upload limits (enforced while reading) and paths: no request reaches outside the home dir."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from instrec.service.limits import BodyLimit

from .helpers import assert_error, enrol, recognize

LIMIT = 150_000


@pytest.fixture(scope="module")
def limited(make_client):
    return make_client(**{"service.max_upload_bytes": str(LIMIT)})


def test_small_uploads_pass(limited, photos):
    small = photos["camera"]
    assert len(small) < LIMIT
    assert recognize(limited, small).status_code == 200


def test_multipart_over_the_limit_is_413(limited):
    big = os.urandom(LIMIT + 10)
    assert_error(recognize(limited, big), 413, "payload_too_large")
    assert_error(enrol(limited, "Big", big), 413, "payload_too_large")


def test_raw_body_over_the_limit_is_413(limited):
    response = limited.post("/v1/recognize", content=os.urandom(LIMIT + 1), headers={"content-type": "image/jpeg"})
    assert_error(response, 413, "payload_too_large")


def test_chunked_body_without_content_length_is_cut_off(limited):
    def chunks():
        for _ in range(40):
            yield b"\xff" * 8192  # 320 KB, no Content-Length header (chunked)

    response = limited.post("/v1/recognize", content=chunks(), headers={"content-type": "image/jpeg"})
    assert_error(response, 413, "payload_too_large")
    assert limited.get("/healthz").status_code == 200


def test_lying_content_length_is_not_trusted():
    """Declared small, sent big: reading stops at the limit with 413."""
    calls = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            calls.append(len(message["body"]))
            if not message.get("more_body"):
                break

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 10

    async def receive():
        return chunks[len(calls)]

    async def send(message):  # pragma: no cover - the app sends nothing
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/recognize", "headers": [(b"content-length", b"10")]}
    with pytest.raises(Exception) as raised:
        anyio.run(BodyLimit(app, 2500), scope, receive, send)
    assert getattr(raised.value, "status_code", None) == 413
    assert len(calls) == 2  # stopped on the third chunk, not after reading everything


def test_declared_content_length_over_the_limit_is_refused_at_once():
    sent = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("reached the app")

    async def receive():  # pragma: no cover - must not be read
        raise AssertionError("read the body")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/instances", "headers": [(b"content-length", b"999999")]}
    anyio.run(BodyLimit(app, 1000), scope, receive, send)
    assert sent[0]["status"] == 413


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/instances/..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/instances/%2e%2e", 404),
        ("/v1/instances/..", 404),
        ("/v1/instances/%2e%2e%2fcatalog.sqlite", 404),
        ("/v1/images/..%2F1/thumbnail", 404),
        ("/v1/images/%2e%2e/thumbnail", 422),
        ("/static/../app.py", 404),
        ("/static/%2e%2e/app.py", 404),
        ("/static/..%2Fapp.py", 404),
        ("/static/%2e%2e%2f%2e%2e%2fconfig.py", 404),
        ("/static//etc/passwd", 404),
    ],
)
def test_path_traversal_attempts_touch_nothing(client, path, status):
    response = client.get(path)
    assert response.status_code in (status, 404), (path, response.status_code, response.text[:200])
    assert b"import" not in response.content and b"root:" not in response.content
    assert response.json()["error"]["status"] == response.status_code


def test_uploaded_filenames_are_never_used_as_paths(client, photos, tmp_path_factory):
    files = [("images", ("../../../../tmp/instrec-evil.jpg", photos["coins"], "image/jpeg"))]
    response = client.post("/v1/instances", data={"label": "Evil filename"}, files=files)
    assert response.status_code == 201
    assert not Path("/tmp/instrec-evil.jpg").exists()
    home = client.app.state.service.config.home
    written = {p.relative_to(home).parts[0] for p in Path(home).rglob("*") if p.is_file()}
    assert written <= {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "images", "index"}
    assert "evil" not in " ".join(str(p) for p in Path(home).rglob("*"))


def test_static_files_are_served(client):
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert_error(client.get("/static/missing.js"), 404)
