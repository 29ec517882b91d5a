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


def test_a_shared_catalog_refuses_to_create_other_collections(make_client, postgres_url):
    client = make_client(**{"catalog.url": postgres_url})
    answer = client.put("/v1/collections/shoes")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "collections_unsupported"
