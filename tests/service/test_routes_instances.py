"""Instances and images: enrol, add, list/search, get, update, delete, thumbnails."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from .helpers import assert_error, enrol, jpeg, tiny_png


@pytest.fixture(scope="module")
def astronaut(client, photos):
    response = enrol(client, "Astronaut", photos["astronaut"], metadata=json.dumps({"sku": "A-1", "n": 3}))
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_the_instance_with_id_images_and_thumbnails(client, astronaut):
    assert astronaut["id"] and astronaut["label"] == "Astronaut"
    assert astronaut["metadata"] == {"sku": "A-1", "n": 3}
    assert astronaut["image_count"] == 1 and len(astronaut["images"]) == 1
    image = astronaut["images"][0]
    assert astronaut["added_images"] == [image["id"]] and astronaut["duplicate_images"] == []
    assert image["thumbnail_url"].startswith(f"/v1/images/{image['id']}/thumbnail?")
    assert "path" not in json.dumps(astronaut) and "source" not in image  # no server paths leak


def test_create_with_three_photos_and_a_chosen_id(client, photos, views):
    response = enrol(
        client, "Coffee cup", photos["coffee"], views["coffee"]["rotated"], views["coffee"]["relit"], instance_id="coffee-1"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == "coffee-1" and body["image_count"] == 3


def test_create_refuses_a_duplicate_id(client, photos):
    assert enrol(client, "Cat", photos["chelsea"], instance_id="dup-id").status_code == 201
    assert_error(enrol(client, "Cat again", photos["chelsea"], instance_id="dup-id"), 409, "duplicate_instance")


def test_same_photo_twice_in_one_request_is_stored_once(client, photos):
    body = enrol(client, "Rocket", photos["rocket"], photos["rocket"]).json()
    assert body["image_count"] == 1


def test_unicode_label_round_trips(client, photos):
    label = "Füchse 🦊 狐 — «ça va»"
    body = enrol(client, label, photos["horse"]).json()
    assert body["label"] == label
    assert client.get(f"/v1/instances/{body['id']}").json()["label"] == label


@pytest.mark.parametrize(
    "label, code",
    [
        ("   ", "invalid_label"),
        ("x" * 1001, "invalid_label"),
        ("bad\x00label", "invalid_label"),
        ("line\nbreak", "invalid_label"),
    ],
)
def test_create_validates_the_label(client, photos, label, code):
    before = client.get("/v1/instances").json()["total"]
    assert_error(enrol(client, label, photos["clock"]), 422, code)
    assert client.get("/v1/instances").json()["total"] == before


def test_create_needs_a_label_and_images(client, photos):
    assert_error(
        client.post("/v1/instances", files=[("images", ("a.jpg", photos["clock"], "image/jpeg"))]), 422, "validation_error"
    )
    assert_error(client.post("/v1/instances", data={"label": "nothing"}), 422, "validation_error")


def test_create_refuses_more_than_three_photos(client, photos):
    four = [photos[n] for n in ("clock", "coins", "horse", "camera")]
    assert_error(enrol(client, "Four", *four), 422, "too_many_images")


@pytest.mark.parametrize("metadata", ["{not json", "[1, 2]", '"text"', "42", "null"])
def test_metadata_must_be_a_json_object(client, photos, metadata):
    assert_error(enrol(client, "Meta", photos["clock"], metadata=metadata), 422, "invalid_metadata")


def test_metadata_size_is_bounded(client, photos):
    big = json.dumps({"blob": "x" * 70_000})
    assert_error(enrol(client, "Meta", photos["clock"], metadata=big), 422, "invalid_metadata")


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "..\\x", "x" * 201, "tab\there", ".", "..", "del\x7f", "c1\x85c"])
def test_instance_ids_that_could_be_paths_are_refused(client, photos, bad_id):
    assert_error(enrol(client, "Path", photos["clock"], instance_id=bad_id), 422, "invalid_id")


@pytest.mark.parametrize("odd_id", ["...", ".hidden", "a.b", "50% off?", "#1 & co", "café ☕"])
def test_ids_a_path_segment_carries_are_reachable_by_their_url(client, photos, odd_id):
    from urllib.parse import quote

    assert enrol(client, "Odd", photos["clock"], instance_id=odd_id).status_code == 201
    url = f"/v1/instances/{quote(odd_id, safe='')}"
    assert client.get(url).json()["id"] == odd_id
    assert client.delete(url).status_code == 204


@pytest.mark.parametrize("legacy_id", [".", ".."])
def test_an_id_stored_before_it_was_refused_can_still_be_deleted(make_recognizer, make_client, photos, monkeypatch, legacy_id):
    import instrec.catalog.catalog

    recognizer = make_recognizer()
    with monkeypatch.context() as old_rule:  # the rule of earlier versions, which let these ids in
        old_rule.setattr(instrec.catalog.catalog, "validate_instance_id", lambda instance_id: instance_id)
        assert recognizer.enroll([photos["coins"]], instance_id=legacy_id).added
    client = make_client(recognizer)
    listed = client.get("/v1/instances", params={"search": legacy_id}).json()["instances"]
    assert legacy_id in [item["id"] for item in listed]
    assert client.delete("/v1/instances", params={"id": legacy_id}).status_code == 204
    assert_error(client.delete("/v1/instances", params={"id": legacy_id}), 404, "unknown_instance")


def test_bad_photos_are_refused_and_nothing_is_written(client, photos):
    before = client.get("/v1/stats").json()
    assert_error(enrol(client, "Half", photos["clock"][: len(photos["clock"]) // 2]), 400, "corrupt_image")
    assert_error(enrol(client, "Empty", b""), 400, "corrupt_image")
    assert_error(enrol(client, "Text", b"just some text, not a photo\n" * 20), 415, "not_an_image")
    assert_error(enrol(client, "Tiny", tiny_png()), 400, "image_too_small")
    # one good and one bad photo: the whole enrolment is refused
    assert_error(enrol(client, "Mixed", photos["clock"], b"\xff\xd8\xff\xe0garbage"), 400)
    after = client.get("/v1/stats").json()
    assert (after["instances"], after["images"], after["vectors"]) == (before["instances"], before["images"], before["vectors"])


def test_add_images_to_an_instance(client, astronaut, views):
    url = f"/v1/instances/{astronaut['id']}/images"
    response = client.post(url, files=[("images", ("crop.jpg", views["astronaut"]["crop"], "image/jpeg"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image_count"] == 2 and len(body["added_images"]) == 1
    again = client.post(url, files=[("images", ("crop.jpg", views["astronaut"]["crop"], "image/jpeg"))]).json()
    assert again["added_images"] == [] and again["duplicate_images"] == body["added_images"]
    assert again["image_count"] == 2


def test_add_images_to_an_unknown_instance_is_404(client, photos):
    response = client.post("/v1/instances/no-such-id/images", files=[("images", ("a.jpg", photos["clock"], "image/jpeg"))])
    assert_error(response, 404, "unknown_instance")
    assert_error(client.get("/v1/instances/no-such-id"), 404, "unknown_instance")


def test_add_images_respects_the_per_instance_limit(make_client, photos):
    small = make_client(**{"limits.max_images_per_instance": "2"})
    created = enrol(small, "Limited", photos["clock"], photos["coins"]).json()
    response = small.post(f"/v1/instances/{created['id']}/images", files=[("images", ("h.jpg", photos["horse"], "image/jpeg"))])
    assert_error(response, 422, "too_many_images")


def test_list_paginates_and_searches(make_client, photos):
    fresh = make_client()
    labels = ["red mug", "blue mug", "green plate", "Red Kettle", "spoon"]
    names = ["clock", "coins", "horse", "camera", "rocket"]
    for label, name in zip(labels, names):
        assert enrol(fresh, label, photos[name]).status_code == 201
    page = fresh.get("/v1/instances", params={"limit": 2}).json()
    assert page["total"] == 5 and len(page["instances"]) == 2 and page["offset"] == 0
    rest = fresh.get("/v1/instances", params={"limit": 2, "offset": 4}).json()
    assert len(rest["instances"]) == 1
    pages = [fresh.get("/v1/instances", params={"limit": 2, "offset": o}).json()["instances"] for o in (0, 2, 4)]
    seen = [i["label"] for page in pages for i in page]
    assert sorted(seen) == sorted(labels)
    mugs = fresh.get("/v1/instances", params={"search": "mug"}).json()
    assert mugs["total"] == 2 and {i["label"] for i in mugs["instances"]} == {"red mug", "blue mug"}
    red = fresh.get("/v1/instances", params={"search": "red"}).json()
    assert red["total"] == 2  # case-insensitive (SQLite LIKE)
    assert fresh.get("/v1/instances", params={"search": "100%_"}).json()["total"] == 0
    first = page["instances"][0]
    assert first["images"] and first["images"][0]["thumbnail_url"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}, {"search": "s" * 201}])
def test_list_validates_its_parameters(client, params):
    assert_error(client.get("/v1/instances", params=params), 422, "validation_error")


def test_get_one_instance(client, astronaut):
    body = client.get(f"/v1/instances/{astronaut['id']}").json()
    assert body["id"] == astronaut["id"] and body["images"][0]["id"] == astronaut["images"][0]["id"]


def test_patch_updates_label_and_metadata(client, photos):
    created = enrol(client, "Old name", photos["coins"], metadata='{"a": 1}').json()
    url = f"/v1/instances/{created['id']}"
    body = client.patch(url, json={"label": "New name"}).json()
    assert body["label"] == "New name" and body["metadata"] == {"a": 1}
    body = client.patch(url, json={"metadata": {"b": [1, 2]}}).json()
    assert body["label"] == "New name" and body["metadata"] == {"b": [1, 2]}
    assert client.get(url).json()["metadata"] == {"b": [1, 2]}


@pytest.mark.parametrize(
    "payload, code",
    [
        ({}, "validation_error"),
        ({"metadata": [1, 2]}, "validation_error"),
        ({"metadata": "text"}, "validation_error"),
        ({"label": "x" * 1001}, "validation_error"),
        ({"label": "  "}, "invalid_label"),
        ({"colour": "red"}, "validation_error"),
    ],
)
def test_patch_validates(client, astronaut, payload, code):
    assert_error(client.patch(f"/v1/instances/{astronaut['id']}", json=payload), 422, code)


def test_patch_needs_a_json_body(client, astronaut):
    response = client.patch(f"/v1/instances/{astronaut['id']}", content=b"label=x", headers={"content-type": "text/plain"})
    assert_error(response, 422, "validation_error")
    assert_error(
        client.patch(f"/v1/instances/{astronaut['id']}", content=b"{bad json", headers={"content-type": "application/json"}),
        422,
        "validation_error",
    )


def test_patch_unknown_instance_is_404(client):
    assert_error(client.patch("/v1/instances/nobody", json={"label": "x"}), 404, "unknown_instance")


def test_delete_instance(client, photos):
    created = enrol(client, "Short-lived", photos["camera"]).json()
    image_id = created["images"][0]["id"]
    assert client.delete(f"/v1/instances/{created['id']}").status_code == 204
    assert_error(client.get(f"/v1/instances/{created['id']}"), 404, "unknown_instance")
    assert_error(client.delete(f"/v1/instances/{created['id']}"), 404, "unknown_instance")
    assert_error(client.get(f"/v1/images/{image_id}/thumbnail"), 404, "unknown_image")


def test_thumbnail_is_a_small_cacheable_jpeg(client, astronaut):
    url = astronaut["images"][0]["thumbnail_url"]
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "immutable" in response.headers["cache-control"]
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "JPEG" and max(picture.size) == 256
    small = client.get(f"/v1/images/{astronaut['images'][0]['id']}/thumbnail", params={"size": 64})
    assert max(Image.open(io.BytesIO(small.content)).size) == 64
    assert "no-cache" in small.headers["cache-control"]  # not pinned to a content version
    again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize("size", [0, 15, 1025, "big"])
def test_thumbnail_size_is_validated(client, astronaut, size):
    image_id = astronaut["images"][0]["id"]
    assert_error(client.get(f"/v1/images/{image_id}/thumbnail", params={"size": size}), 422, "validation_error")


def test_get_and_delete_one_image(client, photos, views):
    created = enrol(client, "Two photos", photos["horse"], views["horse"]["crop"]).json()
    first, second = (i["id"] for i in created["images"])
    assert client.get(f"/v1/images/{first}").json()["instance_id"] == created["id"]
    assert client.delete(f"/v1/images/{first}").status_code == 204
    assert_error(client.get(f"/v1/images/{first}"), 404, "unknown_image")
    assert_error(client.delete(f"/v1/images/{first}"), 404, "unknown_image")
    remaining = client.get(f"/v1/instances/{created['id']}").json()
    assert remaining["image_count"] == 1 and remaining["images"][0]["id"] == second
    assert client.get(remaining["images"][0]["thumbnail_url"]).status_code == 200


@pytest.mark.parametrize("image_id", ["abc", "-1", "0", "1.5", "99999999999999999999999"])
def test_image_ids_are_validated(client, image_id):
    assert_error(client.get(f"/v1/images/{image_id}/thumbnail"), 422, "validation_error")
    assert_error(client.get(f"/v1/images/{image_id}"), 422, "validation_error")


@pytest.mark.parametrize(
    "metadata", ['{"x": NaN}', '{"x": Infinity}', "[" * 5000 + "]" * 5000, '{"a": ' * 3000 + "1" + "}" * 3000]
)
def test_metadata_must_be_strict_json(client, photos, metadata):
    response = enrol(client, "Strict", photos["clock"], metadata=metadata)
    assert_error(response, 422, "invalid_metadata")


def test_patch_refuses_non_strict_json(client, astronaut):
    response = client.patch(
        f"/v1/instances/{astronaut['id']}", content=b'{"metadata": {"x": NaN}}', headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_metadata")
    assert client.get(f"/v1/instances/{astronaut['id']}").status_code == 200  # still serialisable


def test_thumbnails_of_big_jpegs_and_transparent_pngs(client):
    from .helpers import png

    big = Image.fromarray(np.random.default_rng(1).integers(0, 255, (2000, 3000, 3), dtype=np.uint8))
    cutout = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    cutout.paste((200, 30, 30, 255), (50, 50, 250, 150))
    created = client.post(
        "/v1/instances",
        data={"label": "Big and cut-out"},
        files=[
            ("images", ("big.jpg", jpeg(big, quality=80), "image/jpeg")),
            ("images", ("cutout.png", png(cutout), "image/png")),
        ],
    ).json()
    assert created["image_count"] == 2, created
    big_thumb, cut_thumb = (Image.open(io.BytesIO(client.get(i["thumbnail_url"]).content)) for i in created["images"])
    assert big_thumb.size == (256, 171)
    assert cut_thumb.getpixel((2, 2))[0] > 240  # transparency composited over white, not black
