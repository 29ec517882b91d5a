import numpy as np
import pytest

from instrec.catalog import BlobStore, Catalog, NewImage
from instrec.errors import DuplicateInstanceError, InstrecError, UnknownImageError, UnknownInstanceError


def image(sha: str, n_views: int = 1, dim: int = 4) -> NewImage:
    views = tuple(f"v{i}" for i in range(n_views))
    return NewImage(sha * 64 if len(sha) == 1 else sha, "src.jpg", 10, 20, np.ones((n_views, dim), np.float32), views)


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    yield cat
    cat.close()


def test_add_get_list_update(catalog):
    inst, added, dup = catalog.add_images("mug", [image("a"), image("b")], "d1", label="Blue mug", metadata={"sku": 1})
    assert inst.label == "Blue mug" and inst.metadata == {"sku": 1} and inst.image_count == 2
    assert len(added) == 2 and dup == []
    assert [i.id for i in catalog.list_instances(search="blue")] == ["mug"]
    assert catalog.count_instances("zzz") == 0
    updated = catalog.update_instance("mug", metadata={"sku": 2})
    assert updated.metadata == {"sku": 2} and updated.label == "Blue mug"


def test_same_image_twice_is_a_duplicate_not_a_second_row(catalog):
    catalog.add_images("mug", [image("a")], "d1")
    _, added, dup = catalog.add_images("mug", [image("a"), image("a")], "d1")
    assert added == [] and len(dup) == 1
    assert catalog.stats() == {"instances": 1, "images": 1, "vectors": 1}


def test_must_create_refuses_existing_id(catalog):
    catalog.add_images("mug", [image("a")], "d1")
    with pytest.raises(DuplicateInstanceError):
        catalog.add_images("mug", [image("b")], "d1", must_create=True)
    assert catalog.stats()["images"] == 1  # nothing half-written


def test_remove_cascades_and_journals(catalog):
    catalog.add_images("a", [image("a", n_views=2)], "d1")
    catalog.add_images("b", [image("b")], "d1")
    head = catalog.journal_head()
    catalog.remove_instance("a")
    entries = catalog.journal_since(head)
    assert [op for _, op, _ in entries] == ["remove", "remove"]
    assert catalog.stats() == {"instances": 1, "images": 1, "vectors": 1}
    with pytest.raises(UnknownInstanceError):
        catalog.get_instance("a")
    with pytest.raises(UnknownImageError):
        catalog.remove_image(999)


@pytest.mark.parametrize("bad", ["", "a/b", "..\\x", "x\n", "y" * 201])
def test_bad_instance_ids_are_refused(catalog, bad):
    with pytest.raises(InstrecError):
        catalog.add_images(bad, [image("a")], "d1")


def test_like_search_escapes_wildcards(catalog):
    catalog.add_images("a", [image("a")], "d1", label="100% juice")
    catalog.add_images("b", [image("b")], "d1", label="1000 juice")
    assert [i.id for i in catalog.list_instances(search="100%")] == ["a"]


def test_blob_store_round_trip_and_refuses_paths(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    sha = "ab" * 32
    blobs.put(sha, b"data")
    assert blobs.get(sha) == b"data"
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")
    blobs.delete(sha)
    assert not blobs.path(sha).exists()
