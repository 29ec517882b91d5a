"""/v1/stats/history: per-minute API traffic, latency, unknown rate and scores for the admin page, admin only."""

from __future__ import annotations

from PIL import Image

from instrec.service.history import History
from tests.photos import sample_photo

from .helpers import ADMIN_KEY, READ_KEY, assert_error, enrol, jpeg, recognize

ADMIN = {"X-API-Key": ADMIN_KEY}


def test_history_counts_requests_recognitions_and_scores_of_this_minute(make_client):
    client = make_client(**{"service.auth": "true", "service.api_keys": READ_KEY, "service.admin_keys": ADMIN_KEY})
    assert enrol(client, "Astronaut", jpeg(sample_photo("astronaut")), headers=ADMIN).status_code == 201
    assert recognize(client, jpeg(sample_photo("astronaut")), headers=ADMIN).json()["unknown"] is False
    assert recognize(client, jpeg(Image.new("RGB", (320, 240), (30, 200, 90))), headers=ADMIN).json()["unknown"] is True
    for path in ("/healthz", "/metrics", "/", "/v1/stats"):  # probes, scrapes, pages, monitoring: not traffic
        client.get(path, headers=ADMIN)
    body = client.get("/v1/stats/history", headers=ADMIN).json()
    minute = body["minutes"][-1]
    assert minute["requests"] == 3 and minute["latency_ms_p95"] >= minute["latency_ms_p50"] > 0
    assert minute["recognitions"] == 2 and minute["unknown_rate"] == 0.5
    assert sum(minute["score_counts"]) == 2 and len(minute["score_counts"]) == len(body["score_bins"]) - 1


def test_history_needs_an_admin_key(make_client):
    client = make_client(**{"service.auth": "true", "service.api_keys": READ_KEY, "service.admin_keys": ADMIN_KEY})
    assert_error(client.get("/v1/stats/history"), 401)
    assert_error(client.get("/v1/stats/history", headers={"X-API-Key": READ_KEY}), 403)


def test_history_keeps_a_bounded_number_of_minutes():
    now = [0.0]
    history = History(minutes=3, clock=lambda: now[0])
    for minute in range(10):
        now[0] = minute * 60.0 + 5
        history.request(0.01 * (minute + 1))
    minutes = history.to_dict()["minutes"]
    assert [m["start"] for m in minutes] == [420, 480, 540]
    # Ended minutes keep what they measured.
    assert [(m["requests"], round(m["latency_ms_p50"])) for m in minutes] == [(1, 80), (1, 90), (1, 100)]
