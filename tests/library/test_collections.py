"""Collections of one home: names that are safe folder names, isolated libraries, listing and deleting."""

from __future__ import annotations

import pytest

from instrec.config import Config
from instrec.errors import ConfigError, UnknownCollectionError
from instrec.library import check_collection_name, collection_home, delete_collection, list_collections
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


def _open(home, embedder, collection="default") -> Recognizer:
    return Recognizer(Config.load(home=home, overrides={"collection": collection}), embedder=embedder)


def test_collections_are_independent_libraries(tmp_path, embedder):
    with _open(tmp_path, embedder, "shoes") as shoes:
        shoes.enroll([sample_photo("rocket")], instance_id="rocket")
        assert shoes.stats()["collection"] == "shoes" and shoes.gallery.count() == 1
    assert list_collections(tmp_path) == ["shoes"]  # the home holds no library of its own yet
    with _open(tmp_path, embedder) as default, _open(tmp_path, embedder, "shoes") as shoes:
        default.enroll([sample_photo("coffee")], instance_id="coffee")
        assert [i.id for i in default.gallery.list()] == ["coffee"] and [i.id for i in shoes.gallery.list()] == ["rocket"]
        assert default.recognize(sample_photo("rocket"), k=5).matches[0].instance_id == "coffee"  # rocket is elsewhere
    assert list_collections(tmp_path) == ["default", "shoes"]


def test_deleting_a_collection_removes_its_folder_only(tmp_path, embedder):
    for name in ("default", "shoes"):
        with _open(tmp_path, embedder, name) as recognizer:
            recognizer.enroll([sample_photo("clock")], instance_id="clock")
    delete_collection(tmp_path, "shoes")
    assert not (tmp_path / "collections" / "shoes").exists() and list_collections(tmp_path) == ["default"]
    with pytest.raises(UnknownCollectionError):
        delete_collection(tmp_path, "shoes")
    with pytest.raises(ConfigError, match="home itself"):
        delete_collection(tmp_path, "default")
    with _open(tmp_path, embedder) as default:
        assert default.gallery.count() == 1
