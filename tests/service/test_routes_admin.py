"""Stats, calibration, health and readiness."""

from __future__ import annotations

from .helpers import assert_error, enrol


def test_stats(client, photos):
    enrol(client, "One", photos["clock"])
    body = client.get("/v1/stats").json()
    assert body["instances"] == 1 and body["images"] == 1 and body["vectors"] == 1
    assert body["index"]["kind"] == "flat" and body["index"]["vectors"] == 1
    assert body["descriptor"]["backbone"] == "efficientnet_lite0" and body["descriptor"]["id"]
    assert isinstance(body["threshold"], float) and body["calibration"] == "default"
    assert "home" not in body  # no server paths
    assert body["service"]["auth"] is False and body["service"]["inference_slots"] >= 1


def test_calibrate_needs_two_instances_then_works(make_client, photos, views):
    fresh = make_client()
    enrol(fresh, "Only", photos["astronaut"])
    assert_error(fresh.post("/v1/calibrate"), 409, "calibration_impossible")
    for name in ("chelsea", "coffee", "rocket"):
        enrol(fresh, name, photos[name], views[name]["crop"])
    body = fresh.post("/v1/calibrate", params={"target_far": 0.05}).json()
    assert 0 < body["threshold"] < 1 and body["target_far"] == 0.05 and body["impostor"] > 0
    stats = fresh.get("/v1/stats").json()
    assert stats["threshold"] == body["threshold"] and stats["calibration"] == body["source"]


def test_calibrate_validates_target(client):
    for bad in ("0", "1", "-0.1", "x"):
        assert_error(client.post("/v1/calibrate", params={"target_far": bad}), 422, "validation_error")


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok", "ready": True, "auth": False,
                                             "version": client.get("/healthz").json()["version"]}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["instances"] >= 0
