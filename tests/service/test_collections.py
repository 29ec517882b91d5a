"""Collections over HTTP: isolated galleries, each with its own threshold; keys limited to some; deletion.

The tests of what a collection holds run over both catalogs (``new_catalog``): SQLite files in the
home, and schemas of one PostgreSQL database."""

from __future__ import annotations

import time

import anyio
import pytest

from instrec.config import Config
from instrec.errors import ConfigError, UnknownCollectionError
from instrec.library import delete_collection
from instrec.service.app import create_app, run
from instrec.service.auth import KeyRing
from instrec.service.collections import Collections

from .conftest import make_config
from .helpers import ADMIN_KEY, READ_KEY, assert_error, enrol, recognize
from .test_metrics import sample

SHOES = "/v1/collections/shoes"
BAGS = "/v1/collections/bags"
SHOES_KEY = "shoes-admin-key"
BAGS_READER = "bags-and-default-reader"


@pytest.fixture(scope="module")
def client(make_client, new_catalog):
    client = make_client(**new_catalog())
    for collection in (SHOES, BAGS):
        assert client.put(collection).status_code == 201
    return client


def _enrol_in(client, collection: str, label: str, photo: bytes, headers: dict[str, str] | None = None):
    data, files = {"label": label}, [("images", ("photo.jpg", photo, "image/jpeg"))]
    return client.post(f"{collection}/instances", data=data, files=files, headers=headers or {})


def _best(response) -> str | None:
    assert response.status_code == 200, response.text
    best = response.json()["best"]
    return best and best["label"]


def test_an_instance_is_found_only_in_its_collection(client, photos, views):
    assert _enrol_in(client, SHOES, "Rocket", photos["rocket"]).status_code == 201
    assert enrol(client, "Coffee", photos["coffee"]).status_code == 201  # the default collection
    query = views["rocket"]["crop"]
    found = client.post(f"{SHOES}/recognize", files={"image": ("q.jpg", query, "image/jpeg")})
    assert _best(found) == "Rocket"
    assert _best(recognize(client, query)) != "Rocket"
    assert _best(client.post(f"{BAGS}/recognize", files={"image": ("q.jpg", query, "image/jpeg")})) is None
    assert [i["label"] for i in client.get(f"{SHOES}/instances").json()["instances"]] == ["Rocket"]
    assert [i["label"] for i in client.get("/v1/instances").json()["instances"]] == ["Coffee"]
    assert client.get(f"{BAGS}/instances").json()["total"] == 0
    # /v1/collections/default is /v1 under its other name
    assert client.get("/v1/collections/default/instances").json()["total"] == 1


def test_the_gallery_gauges_are_per_collection(client, photos):
    def vectors(collection: str) -> float | None:
        return sample(client.get("/metrics").text, "instrec_index_vectors", collection=collection)

    client.get(f"{BAGS}/instances")  # opened: a collection is reported once it is open
    before = {name: vectors(name) for name in ("default", "shoes", "bags")}
    assert None not in before.values()
    assert _enrol_in(client, BAGS, "Horse", photos["horse"]).status_code == 201
    after = {name: vectors(name) for name in ("default", "shoes", "bags")}
    assert after == {**before, "bags": before["bags"] + 1}


def test_images_and_thumbnails_answer_in_their_collection(client, photos):
    body = _enrol_in(client, SHOES, "Camera", photos["camera"]).json()
    image = body["images"][0]
    assert image["thumbnail_url"].startswith(f"{SHOES}/images/{image['id']}/thumbnail")
    assert client.get(image["thumbnail_url"]).headers["content-type"] == "image/jpeg"
    assert client.get(f"{SHOES}/images/{image['id']}").json()["instance_id"] == body["id"]
    assert_error(client.get(f"{BAGS}/images/{image['id']}"), 404, "unknown_image")


def test_each_collection_has_its_own_calibration(client, photos):
    for name in ("chelsea", "horse"):
        assert _enrol_in(client, BAGS, name, photos[name]).status_code == 201
    calibrated = client.post(f"{BAGS}/calibrate", params={"target_far": 0.05}).json()
    bags = client.get(f"{BAGS}/stats").json()
    assert bags["threshold"] == calibrated["threshold"] and bags["calibration"] == calibrated["source"] != "prior"
    assert bags["collection"] == "bags" and "home" not in bags
    assert client.get(f"{SHOES}/stats").json()["calibration"] == "prior"
    assert client.get("/v1/stats").json()["calibration"] == "prior"


def test_listing_creating_and_deleting(make_client, new_catalog, photos):
    client = make_client(**new_catalog())
    assert client.get("/v1/collections").json() == {"collections": [{"name": "default"}]}
    assert client.put("/v1/collections/tmp-1").status_code == 201
    assert client.put("/v1/collections/tmp-1").status_code == 200  # exists already: nothing happens
    assert _enrol_in(client, "/v1/collections/tmp-1", "Clock", photos["clock"]).status_code == 201
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["default", "tmp-1"]
    assert client.delete("/v1/collections/tmp-1").status_code == 204
    assert_error(client.get("/v1/collections/tmp-1/instances"), 404, "unknown_collection")
    assert_error(client.delete("/v1/collections/tmp-1"), 404, "unknown_collection")
    assert_error(client.delete("/v1/collections/default"), 409, "default_collection")
    assert client.get("/v1/collections").json() == {"collections": [{"name": "default"}]}
    assert client.put("/v1/collections/tmp-1").status_code == 201  # a new, empty one
    assert client.get("/v1/collections/tmp-1/instances").json()["total"] == 0


def test_a_collection_is_not_made_by_using_it(client):
    assert_error(client.get("/v1/collections/nowhere/instances"), 404, "unknown_collection")
    assert_error(client.post("/v1/collections/nowhere/recognize", content=b"x"), 404, "unknown_collection")
    assert "nowhere" not in [c["name"] for c in client.get("/v1/collections").json()["collections"]]


@pytest.mark.parametrize("name", [".hidden", "Shoes", "a%20b", "x" * 65, "%2E%2E", "a%2Fb", "con:"])
def test_path_unsafe_names_are_refused(client, name):
    """(A literal ".." never arrives: clients resolve it in the URL; the library refuses it too.)"""
    for response in (client.put(f"/v1/collections/{name}"), client.get(f"/v1/collections/{name}/instances")):
        assert response.status_code in (404, 422), (name, response.text)
    assert all(c["name"] in ("default", "shoes", "bags") for c in client.get("/v1/collections").json()["collections"])


@pytest.fixture(scope="module")
def secured(make_client):
    client = make_client(
        **{
            "service.auth": "true",
            "service.admin_keys": f"{ADMIN_KEY},{SHOES_KEY}@shoes",
            "service.api_keys": f"{READ_KEY},{BAGS_READER}@bags+default",
        }
    )
    for collection in (SHOES, BAGS):
        assert client.put(collection, headers={"X-API-Key": ADMIN_KEY}).status_code == 201
    return client


def test_a_key_limited_to_collections_is_refused_elsewhere(secured, photos):
    shoes = {"X-API-Key": SHOES_KEY}
    assert _enrol_in(secured, SHOES, "Rocket", photos["rocket"], shoes).status_code == 201
    assert secured.get(f"{SHOES}/instances", headers=shoes).json()["total"] == 1
    for method, path in (("GET", "/v1/instances"), ("GET", f"{BAGS}/instances"), ("GET", "/v1/stats"), ("PUT", BAGS)):
        assert_error(secured.request(method, path, headers=shoes), 403, "forbidden")
    assert_error(_enrol_in(secured, "/v1/collections/default", "X", photos["coffee"], shoes), 403, "forbidden")
    assert secured.get("/v1/collections", headers=shoes).json() == {"collections": [{"name": "shoes"}]}


def test_a_limited_read_key_reads_its_collections_only(secured):
    reader = {"X-API-Key": BAGS_READER}
    assert secured.get(f"{BAGS}/instances", headers=reader).status_code == 200
    assert secured.get("/v1/instances", headers=reader).status_code == 200  # "default" is in its list
    assert_error(secured.get(f"{SHOES}/instances", headers=reader), 403, "forbidden")
    assert_error(secured.put(BAGS, headers=reader), 403, "forbidden")  # read-only
    names = [c["name"] for c in secured.get("/v1/collections", headers=reader).json()["collections"]]
    assert names == ["default", "bags"]
    everything = [c["name"] for c in secured.get("/v1/collections", headers={"X-API-Key": READ_KEY}).json()["collections"]]
    assert set(everything) == {"default", "shoes", "bags"}


def test_key_entries_keep_the_old_format_and_add_collections():
    keys = KeyRing(True, ("plain", "reader@bags+shoes", "both@shoes"), ("both", "base64-padded==", "limited@shoes"))
    assert keys.role("plain", "anything") == "read" and keys.collections("plain") is None
    assert keys.role("base64-padded==", "default") == "admin"  # '=' belongs to the key
    assert keys.role("reader", "bags") == "read" and keys.role("reader", "default") is None
    assert keys.collections("reader") == {"bags", "shoes"}
    assert keys.role("limited", "shoes") == "admin" and keys.role("limited", "bags") is None
    assert keys.role("both", "bags") == "admin" and keys.collections("both") is None
    assert keys.role("reader@bags+shoes") is None and keys.collections("guess") == frozenset()  # the entry is not the key
    for bad in ("k@", "k@Shoes", "k@a+../b", "@shoes"):
        with pytest.raises(ConfigError, match="KEY@collection"):
            KeyRing(True, (bad,), ())


def test_the_service_refuses_to_serve_one_collection(tmp_path):
    config = Config.load(home=tmp_path, overrides={"service.auth": "false", "collection": "shoes"})
    with pytest.raises(ConfigError, match="every collection"):
        create_app(config)
    with pytest.raises(SystemExit, match="every collection"):
        run(config)


def test_a_collection_deleted_by_another_process_is_gone_here_too(make_client, new_catalog, photos):
    client = make_client(**new_catalog())
    assert client.put("/v1/collections/elsewhere").status_code == 201
    assert _enrol_in(client, "/v1/collections/elsewhere", "Coins", photos["coins"]).status_code == 201
    config = client.app.state.service.config
    delete_collection(config.home, "elsewhere", config.catalog.url)  # as instrec delete-collection would
    assert_error(client.get("/v1/collections/elsewhere/instances"), 404, "unknown_collection")
    assert client.put("/v1/collections/elsewhere").status_code == 201  # made anew, empty
    assert client.get("/v1/collections/elsewhere/instances").json()["total"] == 0


def test_deleting_waits_for_the_requests_using_the_collection(tmp_path, embedder):
    from instrec.recognizer import Recognizer

    order: list[str] = []

    async def scenario(registry: Collections) -> None:
        assert await registry.create("busy")

        async def delete() -> None:
            await registry.delete("busy")
            order.append("deleted")

        async with anyio.create_task_group() as tasks:
            async with registry.use("busy"):
                tasks.start_soon(delete)
                await anyio.sleep(0.2)
                order.append("request done")
        with pytest.raises(UnknownCollectionError):
            async with registry.use("busy"):
                pass

    with Recognizer(make_config(tmp_path), embedder=embedder) as default:
        anyio.run(lambda: scenario(Collections(default.config, default, lambda recognizer: None)))
    assert order == ["request done", "deleted"] and not (tmp_path / "collections" / "busy").exists()


def test_open_collections_are_bounded_closing_the_one_unused_longest(tmp_path, embedder):
    from instrec.recognizer import Recognizer

    async def scenario(registry: Collections) -> None:
        for name in ("a", "b", "c"):
            assert await registry.create(name)
        assert set(await registry.sizes()) == {"default", "b", "c"}  # "a", unused longest, was closed
        async with registry.use("a"):  # opened anew, closing "b"
            pass
        async with registry.use("c"):
            pass
        assert set(await registry.sizes()) == {"default", "a", "c"}
        assert "b" in registry.names()  # closed, not deleted

    with Recognizer(make_config(tmp_path, **{"service.max_open_collections": "2"}), embedder=embedder) as default:
        anyio.run(lambda: scenario(Collections(default.config, default, lambda recognizer: None)))


def test_a_collection_in_use_is_not_closed_to_make_room(tmp_path, embedder):
    from instrec.recognizer import Recognizer

    async def scenario(registry: Collections) -> None:
        assert await registry.create("busy")
        async with registry.use("busy") as busy:
            assert await registry.create("other")  # over the bound while "busy" serves a request
            assert set(await registry.sizes()) == {"default", "busy", "other"}
            assert busy.recognizer.stats()  # still open under the request
        assert await registry.create("third")  # both idle now: back within the bound
        assert set(await registry.sizes()) == {"default", "third"}

    with Recognizer(make_config(tmp_path, **{"service.max_open_collections": "1"}), embedder=embedder) as default:
        anyio.run(lambda: scenario(Collections(default.config, default, lambda recognizer: None)))


def test_a_collection_recalibrates_by_itself_once_its_gallery_changed(make_client, photos):
    client = make_client(**{"decision.auto_calibrate": "true"})
    assert client.put("/v1/collections/auto").status_code == 201
    for name in ("chelsea", "coffee"):
        assert _enrol_in(client, "/v1/collections/auto", name, photos[name]).status_code == 201
    deadline = time.monotonic() + 120
    while client.get("/v1/collections/auto/stats").json()["calibration"] == "prior" and time.monotonic() < deadline:
        time.sleep(0.25)
    assert client.get("/v1/collections/auto/stats").json()["calibration"].startswith("probes")
