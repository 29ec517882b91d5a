"""Collections of one home: names that are safe folder names, isolated libraries, listing and deleting."""

from __future__ import annotations

import pytest

from instrec.config import Config
from instrec.errors import ConfigError, UnknownCollectionError
from instrec.library import check_collection_name, collection_home, collection_schema, delete_collection, list_collections
from instrec.recognizer import Recognizer
from tests.photos import sample_photo


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "Shoes", "x" * 65, "café", "a b", "-/.."])
def test_names_that_are_no_safe_folder_name_are_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="cannot name a collection"):
        check_collection_name(name)
    with pytest.raises(ConfigError):
        Config.load(home=tmp_path, overrides={"collection": name})


def test_the_default_collection_is_the_home_itself(tmp_path):
    assert collection_home(tmp_path) == collection_home(tmp_path, "default") == tmp_path
    assert collection_home(tmp_path, "shoes.v2") == tmp_path / "collections" / "shoes.v2"
    assert Recognizer.open(tmp_path, collection="shoes").config.collection == "shoes"
    assert Recognizer.open(tmp_path).config.collection == "default"


def test_the_collection_comes_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTREC_COLLECTION", "bags")
    assert Config.load(home=tmp_path).collection == "bags"


def _open(home, embedder, collection="default", catalog_url=None) -> Recognizer:
    overrides = {"collection": collection, **({"catalog.url": catalog_url} if catalog_url else {})}
    return Recognizer(Config.load(home=home, overrides=overrides), embedder=embedder)


def test_collections_are_independent_libraries(tmp_path, embedder, catalog_url):
    with _open(tmp_path, embedder, "shoes", catalog_url) as shoes:
        shoes.enroll([sample_photo("rocket")], instance_id="rocket")
        assert shoes.stats()["collection"] == "shoes" and shoes.gallery.count() == 1
    assert list_collections(tmp_path, catalog_url) == ["shoes"]  # the home holds no library of its own yet
    with _open(tmp_path, embedder, catalog_url=catalog_url) as default, _open(tmp_path, embedder, "shoes", catalog_url) as shoes:
        default.enroll([sample_photo("coffee")], instance_id="coffee")
        assert [i.id for i in default.gallery.list()] == ["coffee"] and [i.id for i in shoes.gallery.list()] == ["rocket"]
        assert default.recognize(sample_photo("rocket"), k=5).matches[0].instance_id == "coffee"  # rocket is elsewhere
        assert [i.id for i in default.gallery.images("coffee")] == [i.id for i in shoes.gallery.images("rocket")]  # own ids
    assert list_collections(tmp_path, catalog_url) == ["default", "shoes"]


def test_deleting_a_collection_removes_its_folder_only(tmp_path, embedder, catalog_url):
    for name in ("default", "shoes"):
        with _open(tmp_path, embedder, name, catalog_url) as recognizer:
            recognizer.enroll([sample_photo("clock")], instance_id="clock")
    delete_collection(tmp_path, "shoes", catalog_url)
    assert not (tmp_path / "collections" / "shoes").exists() and list_collections(tmp_path, catalog_url) == ["default"]
    with pytest.raises(UnknownCollectionError):
        delete_collection(tmp_path, "shoes", catalog_url)
    with pytest.raises(ConfigError, match="home itself"):
        delete_collection(tmp_path, "default", catalog_url)
    with _open(tmp_path, embedder, catalog_url=catalog_url) as default:
        assert default.gallery.count() == 1
    with _open(tmp_path, embedder, "shoes", catalog_url) as again:  # made anew: empty, whatever this home kept
        assert again.gallery.count() == 0 and again.recognize(sample_photo("clock")).matches == []


def test_a_collection_name_too_long_for_a_postgresql_schema_is_refused():
    assert collection_schema("shoes") == "collection_shoes" and collection_schema("default") is None
    with pytest.raises(ConfigError, match="PostgreSQL"):
        collection_schema("x" * 60)
