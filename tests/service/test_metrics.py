"""Prometheus metrics: request counts by route template, latency histograms, recognition scores and
stage times, index size."""

from __future__ import annotations

import re

from .helpers import enrol, recognize


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (None if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (.+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


def test_metrics_are_prometheus_text(client, photos):
    created = enrol(client, "Metered", photos["clock"]).json()
    client.get(f"/v1/instances/{created['id']}")
    client.get("/v1/instances/not-there")
    recognize(client, photos["clock"])  # the enrolled photo itself: known with or without re-ranking
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "instrec_http_requests_total", method="POST", route="/v1/instances", status="201") == 1
    assert sample(text, "instrec_http_requests_total", route="/v1/instances/{instance_id}", status="200") == 1
    assert sample(text, "instrec_http_requests_total", route="/v1/instances/{instance_id}", status="404") == 1
    assert sample(text, "instrec_http_request_duration_seconds_count", method="POST", route="/v1/recognize") == 1
    assert sample(text, "instrec_http_request_duration_seconds_bucket", route="/v1/recognize", le="+Inf") == 1
    assert sample(text, "instrec_recognitions_total", outcome="known") == 1
    assert sample(text, "instrec_recognize_stage_seconds_count", stage="embed") == 1
    assert sample(text, "instrec_inference_queue_seconds_count", kind="enroll") == 1
    assert sample(text, "instrec_enrolled_images_total") == 1
    assert sample(text, "instrec_index_vectors", collection="default") == 1
    assert sample(text, "instrec_library_instances", collection="default") == 1
    assert sample(text, "instrec_index_info", kind="flat", collection="default") == 1


def test_raw_paths_never_become_labels(client):
    for i in range(3):
        client.get(f"/v1/instances/random-{i}")
        client.get(f"/nowhere/{i}")
    text = client.get("/metrics").text
    assert "random-" not in text and "/nowhere" not in text
    assert sample(text, "instrec_http_requests_total", route="<unmatched>", status="404") == 3


def test_index_size_follows_the_library(client, photos):
    before = sample(client.get("/metrics").text, "instrec_index_vectors")
    created = enrol(client, "Grows", photos["coins"], photos["horse"]).json()
    assert sample(client.get("/metrics").text, "instrec_index_vectors") == before + 2
    client.delete(f"/v1/instances/{created['id']}")
    assert sample(client.get("/metrics").text, "instrec_index_vectors") == before


def scored(text: str, outcome: str) -> float:
    return sample(text, "instrec_recognition_best_score_count", outcome=outcome) or 0


def timed(text: str, stage: str) -> float:
    return sample(text, "instrec_recognize_stage_seconds_count", stage=stage) or 0


def test_recognition_scores_outcomes_and_stage_times_move(client, photos):
    enrol(client, "Scored", photos["rocket"])
    before = client.get("/metrics").text
    recognize(client, photos["rocket"])  # its own photo: known
    after = client.get("/metrics").text
    assert scored(after, "known") == scored(before, "known") + 1
    top = sample(after, "instrec_recognition_best_score_bucket", outcome="known", le="1.0")
    assert top == scored(after, "known")  # an exact photo scores at most 1
    for name in ("load", "embed", "search", "total"):  # every stage the answer's timing_ms reports
        assert timed(after, name) == timed(before, name) + 1, name
    # the unknown rate: recognitions by outcome, known + unknown = all recognitions answered
    answered = sample(after, "instrec_http_requests_total", method="POST", route="/v1/recognize", status="200")
    outcomes = sum(sample(after, "instrec_recognitions_total", outcome=o) or 0 for o in ("known", "unknown"))
    assert outcomes == answered


def test_requests_are_labelled_by_collection_and_unknown_names_make_no_label(client, photos):
    assert client.put("/v1/collections/metered").status_code == 201
    client.post("/v1/collections/metered/recognize", files={"image": ("q.jpg", photos["coins"], "image/jpeg")})
    client.get("/v1/stats")
    for i in range(3):
        assert client.get(f"/v1/collections/nosuch-{i}/stats").status_code == 404
    text = client.get("/metrics").text
    route = "/v1/collections/{collection}/recognize"
    assert sample(text, "instrec_http_requests_total", route=route, status="200", collection="metered") == 1
    assert sample(text, "instrec_http_request_duration_seconds_count", route=route, collection="metered") == 1
    assert sample(text, "instrec_http_requests_total", route="/v1/stats", status="200", collection="default") == 1
    assert "nosuch" not in text
    unknown = sample(text, "instrec_http_requests_total", route="/v1/collections/{collection}/stats", status="404", collection="")
    assert unknown == 3
    assert sample(text, "instrec_http_requests_total", route="/v1/collections/{collection}", collection="") == 1  # the PUT
