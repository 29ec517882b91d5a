"""Recognitions in parallel with enrolments and deletions: no error, nothing lost, counts exact."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from tests.photos import sample_photo

from .helpers import PHOTOS, enrol, jpeg, recognize

BASE = ("astronaut", "chelsea", "coffee", "rocket")
EXTRA = ("camera", "clock", "coins", "horse")


def variants() -> list[tuple[str, bytes]]:
    """12 new instances made of distinct photos (the 4 extra photos, each also mirrored and re-lit)."""
    out = []
    for name in EXTRA:
        photo = sample_photo(name)
        out.append((name, jpeg(photo)))
        out.append((f"{name}-mirror", jpeg(photo.transpose(Image.FLIP_LEFT_RIGHT))))
        out.append((f"{name}-dark", jpeg(ImageEnhance.Brightness(photo).enhance(0.5))))
    return out


@pytest.mark.slow
def test_recognitions_run_alongside_enrolments_and_deletes(make_client, photos, views):
    client = make_client(**{"service.inference_slots": "2"})
    base_ids = {}
    for name in BASE:
        base_ids[name] = enrol(client, name, photos[name]).json()["id"]
    doomed = enrol(client, "to be deleted", jpeg(sample_photo("moon"))).json()["id"]

    errors: list[str] = []
    recognised: list[bool] = []
    done = threading.Event()

    def recognise_loop(worker: int) -> None:
        rng = np.random.default_rng(worker)
        while not done.is_set():
            name = BASE[int(rng.integers(len(BASE)))]
            response = recognize(client, views[name]["crop"], k=3)
            if response.status_code != 200:
                errors.append(f"recognise {response.status_code} {response.text[:200]}")
                continue
            recognised.append(response.json()["matches"][0]["instance_id"] == base_ids[name])

    new_ids: dict[str, str] = {}

    def writer() -> None:
        try:
            for label, image in variants():
                response = enrol(client, label, image)
                if response.status_code != 201:
                    errors.append(f"enrol {response.status_code} {response.text[:200]}")
                    continue
                new_ids[label] = response.json()["id"]
            response = client.delete(f"/v1/instances/{doomed}")
            if response.status_code != 204:
                errors.append(f"delete {response.status_code}")
        finally:
            done.set()

    readers = [threading.Thread(target=recognise_loop, args=(i,)) for i in range(4)]
    writers = [threading.Thread(target=writer)]
    for thread in readers + writers:
        thread.start()
    for thread in readers + writers:
        thread.join(timeout=300)
    assert not errors, errors[:5]
    assert len(recognised) >= 8 and all(recognised)

    # afterwards: counts are exact and every enrolled instance is found by its own photo
    stats = client.get("/v1/stats").json()
    expected = len(BASE) + len(variants())
    assert (stats["instances"], stats["images"], stats["vectors"]) == (expected, expected, expected)
    assert stats["index"]["vectors"] == expected
    assert client.get("/v1/instances", params={"limit": 100}).json()["total"] == expected
    for label, image in variants():
        body = recognize(client, image, k=1).json()
        assert body["matches"][0]["instance_id"] == new_ids[label] and not body["unknown"], label
    assert client.get(f"/v1/instances/{doomed}").status_code == 404
    assert set(PHOTOS) >= set(BASE) | set(EXTRA)


def test_concurrent_enrolments_of_the_same_id_create_it_once(make_client, photos):
    client = make_client(**{"service.inference_slots": "2"})
    statuses: list[int] = []

    def attempt(name: str) -> None:
        statuses.append(enrol(client, "race", photos[name], instance_id="same-id").status_code)

    threads = [threading.Thread(target=attempt, args=(name,)) for name in ("clock", "coins", "horse", "camera")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    body = client.get("/v1/instances/same-id").json()
    assert body["image_count"] == 1
    assert client.get("/v1/stats").json()["vectors"] == 1
