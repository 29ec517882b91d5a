"""Stats, calibration, health and readiness."""

from __future__ import annotations

import time

from .helpers import assert_error, enrol


def test_stats(client, photos):
    enrol(client, "One", photos["clock"])
    body = client.get("/v1/stats").json()
    assert body["instances"] == 1 and body["images"] == 1 and body["vectors"] == 1
    assert body["index"]["kind"] == "flat" and body["index"]["vectors"] == 1
    assert body["descriptor"]["backbone"] == "efficientnet_lite0" and body["descriptor"]["id"]
    assert isinstance(body["threshold"], float) and body["calibration"] == "prior"
    assert "home" not in body  # no server paths
    assert body["service"]["auth"] is False and body["service"]["inference_slots"] >= 1


def test_calibrate_needs_an_instance_then_works(make_client, photos, views):
    fresh = make_client()
    assert_error(fresh.post("/v1/calibrate"), 409, "calibration_impossible")
    enrol(fresh, "Only", photos["astronaut"])
    body = fresh.post("/v1/calibrate", params={"target_far": 0.05}).json()
    assert 0 < body["threshold"] < 1 and body["target_far"] == 0.05 and body["impostor"] > 0
    stats = fresh.get("/v1/stats").json()
    assert stats["threshold"] == body["threshold"] and stats["calibration"] == body["source"]


def test_the_service_recalibrates_by_itself_once_the_gallery_changed(make_client, photos):
    client = make_client(**{"decision.auto_calibrate": "true"})
    assert client.get("/v1/stats").json()["calibration"] == "prior"
    for name in ("chelsea", "coffee"):
        enrol(client, name, photos[name])
    deadline = time.monotonic() + 120
    while client.get("/v1/stats").json()["calibration"] == "prior" and time.monotonic() < deadline:
        time.sleep(0.25)
    assert client.get("/v1/stats").json()["calibration"].startswith("probes")


def test_calibrate_validates_target(client):
    for bad in ("0", "1", "-0.1", "x"):
        assert_error(client.post("/v1/calibrate", params={"target_far": bad}), 422, "validation_error")


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {
        "status": "ok",
        "ready": True,
        "auth": False,
        "version": client.get("/healthz").json()["version"],
    }
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["instances"] >= 0
