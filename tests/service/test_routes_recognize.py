"""Recognition: multipart and raw bodies, top-k, unknown, timing, thumbnails, batch, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.photos import sample_photo

from .helpers import assert_error, enrol, jpeg, png_bomb, recognize, tiny_png

ENROLLED = ("astronaut", "chelsea", "coffee", "rocket", "camera")


@pytest.fixture(scope="module")
def ids(client, photos):
    out = {}
    for name in ENROLLED:
        response = enrol(client, name.title(), photos[name], metadata=f'{{"name": "{name}"}}')
        assert response.status_code == 201, response.text
        out[name] = response.json()["id"]
    return out


@pytest.mark.parametrize("name", ENROLLED)
def test_altered_views_are_recognised(client, ids, views, name):
    body = recognize(client, views[name]["crop"]).json()
    assert body["unknown"] is False
    best = body["matches"][0]
    assert best["instance_id"] == ids[name] and best["label"] == name.title()
    assert best["metadata"] == {"name": name}
    assert body["best"]["instance_id"] == ids[name]
    assert best["score"] >= body["threshold"]


def test_response_shape_scores_thumbnails_and_timing(client, ids, views):
    body = recognize(client, views["chelsea"]["rotated"], k=3).json()
    assert set(body) >= {"unknown", "matches", "threshold", "timing_ms", "best"}
    assert len(body["matches"]) == 3
    scores = [m["score"] for m in body["matches"]]
    assert scores == sorted(scores, reverse=True)
    for match in body["matches"]:
        assert set(match) >= {"instance_id", "label", "score", "confidence", "metadata", "image_id", "thumbnail_url", "images"}
        assert 0 <= match["confidence"] <= 1
        thumb = client.get(match["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert set(body["timing_ms"]) >= {"load", "embed", "search", "total", "queue", "request"}
    assert body["timing_ms"]["request"] >= body["timing_ms"]["embed"] > 0


def test_the_best_match_says_where_it_lies_in_the_photo_sent(client, ids):
    astronaut = sample_photo("astronaut")  # detailed to its edges: keypoints reach every side
    canvas = Image.new("RGB", (1500, 1100), (128, 128, 128))
    canvas.paste(astronaut, (600, 300))
    body = recognize(client, jpeg(canvas)).json()
    box = body["best"]["box"]
    assert body["best"]["instance_id"] == ids["astronaut"] and box is not None
    # Around the pasted photo, give or take 15 % of its size.
    width, height = astronaut.size
    assert abs(box["left"] - 600) < 0.15 * width and abs(box["right"] - (600 + width)) < 0.15 * width
    assert abs(box["top"] - 300) < 0.15 * height and abs(box["bottom"] - (300 + height)) < 0.15 * height


def test_k_defaults_and_bounds(client, ids, views):
    assert len(recognize(client, views["coffee"]["crop"]).json()["matches"]) == 5
    assert len(recognize(client, views["coffee"]["crop"], k=1).json()["matches"]) == 1
    assert len(recognize(client, views["coffee"]["crop"], k=50).json()["matches"]) == len(ENROLLED)
    for bad in ("0", "51", "x"):
        assert_error(
            client.post(f"/v1/recognize?k={bad}", files={"image": ("q.jpg", views["coffee"]["crop"])}), 422, "validation_error"
        )
    form_k = client.post("/v1/recognize", data={"k": "2"}, files={"image": ("q.jpg", views["coffee"]["crop"])})
    assert len(form_k.json()["matches"]) == 2
    assert_error(
        client.post("/v1/recognize", data={"k": "zero"}, files={"image": ("q.jpg", views["coffee"]["crop"])}),
        422,
        "validation_error",
    )


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/octet-stream"])
def test_raw_bytes_body(client, ids, views, content_type):
    response = client.post("/v1/recognize?k=2", content=views["rocket"]["crop"], headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["matches"][0]["instance_id"] == ids["rocket"]


@pytest.mark.parametrize("batch", [False, True])
def test_a_recognition_takes_one_trip_to_a_worker_thread(client, ids, views, monkeypatch, batch):
    """Each trip off the event loop costs a thread hop (~2 ms each on a busy 2-core machine): the
    dependencies stay on the loop, and the engine and the catalog lookups share one trip."""
    import anyio.to_thread

    real, trips = anyio.to_thread.run_sync, []

    async def counted(fn, *args, **kwargs):
        trips.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    if batch:
        files = [("images", (f"{n}.jpg", views[n]["crop"], "image/jpeg")) for n in ("coffee", "rocket")]
        response = client.post("/v1/recognize/batch", files=files)
    else:
        response = recognize(client, views["coffee"]["crop"])
    assert response.status_code == 200, response.text
    assert len(trips) == 1, trips
    matches = response.json()["results"][0]["matches"] if batch else response.json()["matches"]
    assert matches[0]["instance_id"] == ids["coffee"] and matches[0]["images"]  # the catalog lookups happened


def test_unrelated_photos_come_back_unknown_with_candidates(client, ids):
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for image in (jpeg(Image.fromarray(noise)), jpeg(sample_photo("gravel"))):
        body = recognize(client, image).json()
        assert body["unknown"] is True and body["best"] is None
        assert body["matches"], "the nearest candidates are still listed"
        assert body["matches"][0]["score"] < body["threshold"]


def test_unknown_flag_agrees_with_threshold(client, ids, views):
    for name in ENROLLED:
        body = recognize(client, views[name]["occluded"]).json()
        assert body["unknown"] == (body["matches"][0]["score"] < body["threshold"])


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client, ids, photos, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/recognize", content=photos["coffee"], headers=headers)
    assert_error(response, 415, "unsupported_media_type")


def test_multipart_without_an_image_field_is_422(client, ids, photos):
    assert_error(client.post("/v1/recognize", files={"photo": ("q.jpg", photos["coffee"])}), 422, "missing_image")
    assert_error(client.post("/v1/recognize", data={"image": "not a file"}, files={"x": ("a", b"b")}), 422, "missing_image")


def test_bad_images(client, ids, photos):
    half = photos["coffee"][: len(photos["coffee"]) // 2]
    assert_error(recognize(client, half), 400, "corrupt_image")
    assert_error(recognize(client, b""), 400, "corrupt_image")
    assert_error(recognize(client, b"%PDF-1.4 this is not an image"), 415, "not_an_image")
    assert_error(recognize(client, tiny_png()), 400, "image_too_small")
    assert_error(recognize(client, png_bomb()), 413, "image_too_large")
    assert client.get("/readyz").status_code == 200


def test_batch(client, ids, views):
    files = [
        ("images", ("a.jpg", views["astronaut"]["crop"], "image/jpeg")),
        ("images", ("b.jpg", views["camera"]["relit"], "image/jpeg")),
    ]
    body = client.post("/v1/recognize/batch", files=files, data={"k": "2"}).json()
    assert [r["filename"] for r in body["results"]] == ["a.jpg", "b.jpg"]
    assert [r["matches"][0]["instance_id"] for r in body["results"]] == [ids["astronaut"], ids["camera"]]
    assert all(len(r["matches"]) == 2 for r in body["results"])
    assert body["timing_ms"]["request"] > 0


def test_batch_answers_bad_images_one_by_one(client, ids, views):
    files = [
        ("images", ("good.jpg", views["coffee"]["crop"], "image/jpeg")),
        ("images", ("../../etc/broken.jpg", b"not an image at all", "image/jpeg")),
        ("images", ("half.jpg", views["rocket"]["crop"][:500], "image/jpeg")),
    ]
    body = client.post("/v1/recognize/batch", files=files).json()
    good, text, half = body["results"]
    assert good["matches"][0]["instance_id"] == ids["coffee"]
    assert text["filename"] == "broken.jpg" and text["error"]["code"] == "not_an_image" and text["error"]["status"] == 415
    assert half["error"]["code"] == "corrupt_image" and half["error"]["status"] == 400


def test_batch_limits(client, ids, views):
    many = [("images", (f"{i}.jpg", views["coffee"]["crop"], "image/jpeg")) for i in range(17)]
    assert_error(client.post("/v1/recognize/batch", files=many), 422, "too_many_images")
    assert_error(client.post("/v1/recognize/batch", data={"k": "1"}), 422, "validation_error")


def test_recognising_an_empty_library_is_unknown(make_client, photos):
    empty = make_client()
    body = recognize(empty, photos["coffee"]).json()
    assert body["unknown"] is True and body["matches"] == []


def test_recognition_thumbnails_decode(client, ids, views):
    body = recognize(client, views["astronaut"]["crop"], k=1).json()
    picture = Image.open(io.BytesIO(client.get(body["matches"][0]["thumbnail_url"]).content))
    assert picture.size[0] <= 256 and picture.size[1] <= 256
