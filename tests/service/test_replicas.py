"""Two services on one PostgreSQL catalog, each with its own home: replicas behind a load balancer."""

from __future__ import annotations

from .helpers import enrol, recognize


def test_what_one_replica_enrols_the_other_answers_shows_and_removes(make_client, photos, views, postgres_url):
    one, other = (make_client(**{"catalog.url": postgres_url}) for _ in range(2))
    for name in ("astronaut", "rocket", "coffee"):
        assert enrol(one, name.title(), photos[name], instance_id=name).status_code == 201
    answer = recognize(other, views["rocket"]["crop"]).json()
    assert answer["unknown"] is False and answer["matches"][0]["instance_id"] == "rocket"
    thumbnail = other.get(answer["matches"][0]["thumbnail_url"])  # the original is in the catalog, not in one's home
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert other.delete("/v1/instances/rocket").status_code == 204
    assert all(match["instance_id"] != "rocket" for match in recognize(one, views["rocket"]["crop"]).json()["matches"])
    assert one.get("/v1/instances/rocket").status_code == 404


def test_replicas_share_the_collections_of_their_catalog(make_client, photos, views, postgres_url):
    one, other = (make_client(**{"catalog.url": postgres_url}) for _ in range(2))
    assert one.put("/v1/collections/shoes").status_code == 201
    assert other.put("/v1/collections/shoes").status_code == 200  # made by the other replica: there already
    assert enrol(one, "Rocket", photos["rocket"], instance_id="rocket").status_code == 201  # the default collection
    files = [("images", ("coffee.jpg", photos["coffee"], "image/jpeg"))]
    assert other.post("/v1/collections/shoes/instances", data={"label": "Cup", "id": "cup"}, files=files).status_code == 201
    assert [c["name"] for c in one.get("/v1/collections").json()["collections"]] == ["default", "shoes"]
    query = {"image": ("q.jpg", views["coffee"]["crop"], "image/jpeg")}
    found = one.post("/v1/collections/shoes/recognize", files=query).json()
    assert [m["instance_id"] for m in found["matches"]] == ["cup"]  # ids of its own: the rocket is elsewhere
    assert one.get("/v1/collections/shoes/instances/cup").status_code == 200
    assert other.delete("/v1/collections/shoes").status_code == 204
    assert one.get("/v1/collections/shoes/instances").status_code == 404
    assert [c["name"] for c in one.get("/v1/collections").json()["collections"]] == ["default"]
    assert one.get("/v1/instances/rocket").status_code == 200
