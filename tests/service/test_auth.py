"""API keys: 401 without a (valid) key, 403 for a read key on a write, open health and metrics."""

from __future__ import annotations

import pytest

from instrec.config import Config
from instrec.errors import ConfigError
from instrec.service.app import create_app, run
from instrec.service.auth import KeyRing, check_auth_config

from .helpers import ADMIN_KEY, READ_KEY, assert_error, enrol, recognize

ADMIN = {"X-API-Key": ADMIN_KEY}
READ = {"X-API-Key": READ_KEY}


@pytest.fixture(scope="module")
def secured(make_client):
    return make_client(
        **{"service.auth": "true", "service.api_keys": READ_KEY, "service.admin_keys": f"{ADMIN_KEY}, second-admin-key"}
    )


@pytest.fixture(scope="module")
def instance(secured, photos):
    response = enrol(secured, "Secured", photos["coffee"], headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def test_open_endpoints(secured):
    assert secured.get("/healthz").json()["auth"] is True
    assert secured.get("/readyz").status_code == 200
    assert secured.get("/metrics").status_code == 200
    assert secured.get("/").status_code == 200
    assert secured.get("/static/app.js").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/instances"),
        ("GET", "/v1/instances/x"),
        ("GET", "/v1/stats"),
        ("GET", "/v1/images/1/thumbnail"),
        ("POST", "/v1/recognize"),
        ("POST", "/v1/instances"),
        ("DELETE", "/v1/instances/x"),
        ("POST", "/v1/calibrate"),
        ("GET", "/v1/no-such-route"),
    ],
)
def test_no_key_is_401(secured, method, path):
    response = secured.request(method, path)
    assert_error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"X-API-Key": ADMIN_KEY + "x"}, {"X-API-Key": ADMIN_KEY[:-1]}],
)
def test_wrong_key_is_401(secured, headers):
    assert_error(secured.get("/v1/instances", headers=headers), 401, "invalid_api_key")


def test_non_bearer_authorization_is_not_a_key(secured):
    assert_error(secured.get("/v1/instances", headers={"Authorization": f"Basic {ADMIN_KEY}"}), 401, "missing_api_key")


def test_read_key_reads(secured, instance, views):
    assert secured.get("/v1/instances", headers=READ).json()["total"] >= 1
    assert secured.get(f"/v1/instances/{instance['id']}", headers=READ).status_code == 200
    assert secured.get("/v1/stats", headers=READ).status_code == 200
    assert secured.get(instance["images"][0]["thumbnail_url"], headers=READ).status_code == 200
    body = recognize(secured, views["coffee"]["crop"], headers=READ).json()
    assert body["matches"][0]["instance_id"] == instance["id"]
    bearer = {"Authorization": f"Bearer {READ_KEY}"}
    assert secured.get("/v1/instances", headers=bearer).status_code == 200


def test_read_key_cannot_write(secured, instance, photos):
    assert_error(enrol(secured, "Nope", photos["clock"], headers=READ), 403, "forbidden")
    url = f"/v1/instances/{instance['id']}"
    assert_error(secured.patch(url, json={"label": "x"}, headers=READ), 403, "forbidden")
    assert_error(secured.delete(url, headers=READ), 403, "forbidden")
    assert_error(secured.post(f"{url}/images", files=[("images", ("a.jpg", photos["clock"]))], headers=READ), 403, "forbidden")
    assert_error(secured.delete(f"/v1/images/{instance['images'][0]['id']}", headers=READ), 403, "forbidden")
    assert_error(secured.post("/v1/calibrate", headers=READ), 403, "forbidden")
    assert secured.get(url, headers=READ).json()["label"] == "Secured"


def test_admin_keys_write(secured, photos):
    created = enrol(secured, "By admin", photos["clock"], headers={"Authorization": "Bearer second-admin-key"})
    assert created.status_code == 201
    url = f"/v1/instances/{created.json()['id']}"
    assert secured.patch(url, json={"label": "Renamed"}, headers=ADMIN).json()["label"] == "Renamed"
    assert secured.delete(url, headers=ADMIN).status_code == 204


def test_unauthenticated_upload_is_refused_before_the_body_is_read():
    """The gate answers 401 without calling receive() and without reaching the app."""
    import anyio

    from instrec.service.auth import AuthGate

    reached, received, sent = [], [], []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        reached.append(scope["path"])

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    gate = AuthGate(app, KeyRing(True, (READ_KEY,), (ADMIN_KEY,)))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/recognize",
        "headers": [(b"content-type", b"image/jpeg"), (b"content-length", b"999999")],
    }
    anyio.run(gate, scope, receive, send)
    assert not reached and not received
    assert sent[0]["status"] == 401
    scope["headers"].append((b"x-api-key", READ_KEY.encode()))
    anyio.run(gate, scope, receive, send)
    assert reached == ["/v1/recognize"]


def test_auth_on_without_keys_refuses_to_start(tmp_path):
    config = Config.load(home=tmp_path, overrides={"service.auth": "true"})
    with pytest.raises(ConfigError, match="no API key"):
        create_app(config)
    with pytest.raises(SystemExit, match="service.auth=false"):
        run(config)
    blank = config.with_overrides({"service.api_keys": " , ", "service.admin_keys": ""})
    with pytest.raises(ConfigError):
        check_auth_config(blank.service)


def test_auth_is_on_by_default(tmp_path):
    assert Config.load(home=tmp_path).service.auth is True


def test_auth_off_explicitly(tmp_path):
    config = Config.load(home=tmp_path, overrides={"service.auth": "false"})
    keys = KeyRing.from_config(config.service)
    assert keys.enabled is False


def test_keys_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTREC_SERVICE__ADMIN_KEYS", "a1,a2")
    monkeypatch.setenv("INSTREC_SERVICE__API_KEYS", "r1")
    config = Config.load(home=tmp_path)
    keys = KeyRing.from_config(config.service)
    assert keys.enabled and keys.role("a2") == "admin" and keys.role("r1") == "read"
    assert keys.role("r2") is None and keys.role("") is None and keys.role(None) is None


def test_metrics_can_require_a_key(make_client):
    guarded = make_client(
        **{"service.auth": "true", "service.api_keys": READ_KEY, "service.admin_keys": ADMIN_KEY, "service.metrics_auth": "true"}
    )
    assert_error(guarded.get("/metrics"), 401, "missing_api_key")
    assert_error(guarded.get("/metrics", headers={"X-API-Key": "guess"}), 401, "invalid_api_key")
    assert guarded.get("/metrics", headers=READ).status_code == 200
    assert guarded.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    assert guarded.get("/healthz").status_code == 200 and guarded.get("/readyz").status_code == 200  # probes stay open
