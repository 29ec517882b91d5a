import dataclasses
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from instrec.catalog import BlobStore, Catalog, NewImage
from instrec.errors import DuplicateInstanceError, InstrecError, UnknownImageError, UnknownInstanceError


def image(sha: str, n_views: int = 1, dim: int = 4) -> NewImage:
    views = tuple(f"v{i}" for i in range(n_views))
    return NewImage(sha * 64 if len(sha) == 1 else sha, "src.jpg", 10, 20, np.ones((n_views, dim), np.float32), views)


@pytest.fixture
def catalog(tmp_path, catalog_url):
    cat = Catalog(catalog_url or tmp_path / "c.sqlite")
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
    head = catalog.journal.head()
    catalog.remove_instance("a")
    entries = catalog.journal.since(head)
    assert [op for _, op, _, _ in entries] == ["remove", "remove"]
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


def test_bulk_batch_matches_one_by_one_writes(catalog):
    catalog.add_images("old", [image("a")], "d1")
    local = NewImage("f" * 64, "l.jpg", 1, 1, np.ones((1, 4), np.float32), local_features=b"kp")
    entries = [
        ("new", [image("b"), image("b"), image("c", n_views=2)]),
        ("old", [image("a"), image("d")]),
        ("new", [image("e")]),
        ("withkp", [local]),
    ]
    head = catalog.journal.head()
    assert catalog.add_batch(entries, "d1") == 5  # b, c (new); d (old); e (repeat of new); f
    assert [i.image_count for i in catalog.list_instances()] == [2, 3, 1]
    assert catalog.get_instance("new").label == "new"
    assert catalog.stats() == {"instances": 3, "images": 6, "vectors": 7}
    assert len(catalog.journal.since(head)) == 6 + 1  # every vector journalled, plus the local features
    assert catalog.features.of_images([catalog.images_of("withkp")[0].id])


def test_bulk_batch_is_all_or_nothing(catalog):
    with pytest.raises(InstrecError):
        catalog.add_batch([("fine", [image("a")]), ("bad/id", [image("b")])], "d1")
    assert catalog.stats() == {"instances": 0, "images": 0, "vectors": 0}


def test_sample_vectors_spreads_over_keys_and_skips_removed(catalog):
    for n in range(50):
        catalog.add_images(f"i{n}", [NewImage(f"{n:064x}", "s", 1, 1, np.full((1, 4), n, np.float32))], "d1")
    catalog.remove_instance("i0")
    sample = catalog.vectors.sample(10, 4)
    assert 8 <= len(sample) <= 10 and 0 not in sample[:, 0]
    assert sample[:, 0].min() < 10 and sample[:, 0].max() == 49


def test_local_features_live_and_die_with_their_image(catalog):
    head = catalog.journal.head()
    _, added, _ = catalog.add_images("a", [dataclasses.replace(image("a"), local_features=b"kp-a")], "d1")
    catalog.add_images("b", [image("b")], "d1")
    pk_a, pk_b = added[0].id, catalog.images_of("b")[0].id
    assert catalog.features.of_images([pk_a, pk_b]) == {pk_a: (catalog.get_instance("a").pk, b"kp-a")}
    assert catalog.features.missing() == [pk_b]
    assert catalog.features.put(pk_b, b"kp-b") and catalog.features.missing() == []
    catalog.remove_instance("a")
    assert not catalog.features.put(pk_a, b"again")
    local = [(op, pk) for _, op, kind, pk in catalog.journal.since(head) if kind == "local"]
    assert local == [("add", pk_a), ("add", pk_b), ("remove", pk_a)]
    assert [pks for pks, _ in catalog.features.iterate(batch=1)] == [[pk_b]]


SIMULTANEOUS_OPENERS = textwrap.dedent("""
    import multiprocessing, sys, time
    from instrec.catalog import Catalog

    def open_at(location, start, n):
        while time.time() < start:  # all three open within the same instant
            pass
        try:
            Catalog(location).set_meta(f"opener-{n}", "in")
            return ""
        except Exception as error:
            return repr(error)

    with multiprocessing.Pool(3) as pool:
        for trial, location in enumerate(sys.argv[1:]):
            start = time.time() + 0.05
            errors = [e for e in pool.starmap(open_at, [(location, start, n) for n in range(3)]) if e]
            if errors:
                sys.exit(f"trial {trial}: {errors}")
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_creating_one_catalog_at_once_all_succeed(tmp_path, request, backend):
    """Switching a new SQLite database to WAL can fail at once with "database is locked" when another
    process is doing the same, and PostgreSQL's CREATE ... IF NOT EXISTS can collide in its own
    catalogs; each of three simultaneous creators must still get in."""
    if backend == "sqlite":
        locations = [str(tmp_path / f"{trial}.sqlite") for trial in range(20)]
    else:
        locations = [request.getfixturevalue("postgres_server").new_database() for _ in range(10)]
    done = subprocess.run([sys.executable, "-c", SIMULTANEOUS_OPENERS, *locations], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for location in locations:
        catalog = Catalog(location)
        assert [catalog.get_meta(f"opener-{n}") for n in range(3)] == ["in"] * 3
        catalog.close()


def test_a_reader_following_the_journal_under_concurrent_writers_misses_nothing(catalog):
    """A number must become visible only once every lower one has: a reader that applied up to N and
    then found N+1 must never later see an entry below N+1 (it would skip it for ever)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(60):
                catalog.add_images(f"w{n}-{i}", [image(f"{n:02x}{i:062x}", n_views=2)], "d1")
                if i % 4 == 3:
                    catalog.remove_instance(f"w{n}-{i - 2}")
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in writers:
        thread.start()
    seen, last = [], 0
    while any(thread.is_alive() for thread in writers) or not stop.is_set():
        if not any(thread.is_alive() for thread in writers):
            stop.set()  # one last read after every writer finished
        entries = catalog.journal.since(last)
        seen += [seq for seq, *_ in entries]
        last = entries[-1][0] if entries else last
    assert errors == []
    assert seen == [seq for seq, *_ in catalog.journal.since(0)]
    assert len(seen) == 3 * (60 * 2 + 15 * 2)
