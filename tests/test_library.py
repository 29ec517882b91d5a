"""The index stays consistent with the catalog: across processes, reopen, and kill -9 mid-write."""

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from pymilvus import MilvusClient

from instrec.catalog import NewImage
from instrec.config import IndexConfig
from instrec.errors import DescriptorMismatchError
from instrec.library import Library, OwnerTable

DIM = 16


def open_library(home, backend="flat", descriptor="d1", threshold=20_000, catalog_url=None):
    return Library(
        home,
        dim=DIM,
        descriptor=descriptor,
        descriptor_info={"name": descriptor},
        index=IndexConfig(backend=backend, auto_threshold=threshold, nprobe=64),
        catalog_url=catalog_url,
    )


def new_image(seed: int) -> NewImage:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((1, DIM)).astype(np.float32)
    return NewImage(f"{seed:064x}", f"img{seed}", 8, 8, v / np.linalg.norm(v))


def assert_consistent(library: Library) -> None:
    owners = library.catalog.vectors.owners()
    info = library.index_info()
    assert info["vectors"] == len(owners) == library.catalog.stats()["vectors"]
    if owners:
        ids, inst, vectors = library.catalog.vectors.by_pk(sorted(owners), DIM)
        hits = library.search(vectors, 1)
        assert [int(h.vector_ids[0]) for h in hits] == ids.tolist()
        assert [int(h.instance_pks[0]) for h in hits] == inst.tolist()


def test_owner_table_grows_forgets_and_answers_minus_one_for_unknown_ids():
    owners = OwnerTable.of({3: 30, 7: 70})
    owners.set(np.array([1000, 5]), np.array([9, 50]))  # far past the current size: grows
    owners.clear(np.array([7, 123456]))  # an id never seen is ignored
    looked_up = owners(np.array([3, 5, 7, 1000, 999, -1, 10**9]))
    assert looked_up.tolist() == [30, 50, -1, 9, -1, -1, -1]


@pytest.mark.parametrize("backend", ["flat", "milvus"])
def test_adds_and_removals_are_searchable_at_once(tmp_path, backend, catalog_url):
    library = open_library(tmp_path, backend, catalog_url=catalog_url)
    library.catalog.add_images("a", [new_image(1)], library.descriptor)
    library.catalog.add_images("b", [new_image(2)], library.descriptor)
    assert_consistent(library)
    library.catalog.remove_instance("a")
    assert_consistent(library)
    assert library.index_info()["vectors"] == 1


def test_second_process_sees_first_process_writes(tmp_path, catalog_url):
    writer, reader = open_library(tmp_path, catalog_url=catalog_url), open_library(tmp_path, catalog_url=catalog_url)
    writer.catalog.add_images("a", [new_image(1)], writer.descriptor)
    assert reader.index_info()["vectors"] == 1
    writer.catalog.remove_instance("a")
    assert reader.index_info()["vectors"] == 0


def test_reopen_uses_saved_index_and_replays_the_rest(tmp_path, catalog_url):
    library = open_library(tmp_path, catalog_url=catalog_url)
    for seed in range(5):
        library.catalog.add_images(f"i{seed}", [new_image(seed)], library.descriptor)
    library.close()
    library = open_library(tmp_path, catalog_url=catalog_url)
    library.catalog.add_images("late", [new_image(99)], library.descriptor)
    library.catalog.remove_instance("i0")
    # a reader that only has the saved index (seq before 'late') must catch up by replay:
    again = open_library(tmp_path, catalog_url=catalog_url)
    assert_consistent(again)
    assert again.index_info()["vectors"] == 5


def test_milvus_store_ahead_of_the_saved_position_replays_to_the_catalog(tmp_path):
    """The store keeps every change at once, the saved pointer only a position: a replay over changes the
    store already holds (a crash before the next save) must leave it exactly the catalog."""
    library = open_library(tmp_path, "milvus")
    for seed in range(5):
        library.catalog.add_images(f"i{seed}", [new_image(seed)], library.descriptor)
    library.close()
    library = open_library(tmp_path, "milvus")
    library.catalog.add_images("late", [new_image(99)], library.descriptor)
    library.catalog.remove_instance("i0")
    library.search(new_image(1).vectors, 1)  # the store now holds both changes; nothing saved since
    library._index.close()  # a crash: no save
    again = open_library(tmp_path, "milvus")
    assert again.index_info()["kind"] == "milvus"
    assert_consistent(again)
    assert again.index_info()["vectors"] == 5


def test_a_milvus_store_that_lost_its_vectors_is_rebuilt_from_the_catalog(tmp_path):
    library = open_library(tmp_path, "milvus")
    library.catalog.add_images("a", [new_image(1)], library.descriptor)
    library.close()
    store = MilvusClient(str(tmp_path / "index" / "milvus.db"))
    store.drop_collection("instrec")  # emptied by someone else, the way a shared server may be
    store.close()
    again = open_library(tmp_path, "milvus")
    assert again.index_info()["vectors"] == 1
    assert_consistent(again)


def test_corrupt_saved_index_is_rebuilt(tmp_path):
    library = open_library(tmp_path)
    library.catalog.add_images("a", [new_image(1)], library.descriptor)
    library.close()
    for path in (tmp_path / "index").glob("*.faiss"):
        path.write_bytes(b"garbage")
    assert_consistent(open_library(tmp_path))


@pytest.mark.parametrize("state", ["not json", "[1, 2]", '{"seq": 1}', "missing file"])
def test_unusable_saved_state_is_ignored_and_rebuilt_then_saved_again(tmp_path, state):
    library = open_library(tmp_path)
    library.catalog.add_images("a", [new_image(1)], library.descriptor)
    library.close()
    state_path = tmp_path / "index" / "state.json"
    if state == "missing file":
        saved = json.loads(state_path.read_text())
        (tmp_path / "index" / saved["file"]).unlink()
    else:
        state_path.write_text(state)
    again = open_library(tmp_path)
    assert_consistent(again)
    again.catalog.add_images("b", [new_image(2)], again.descriptor)
    again.close()
    assert json.loads(state_path.read_text())["seq"] > 0  # a fresh state replaced the unusable one
    assert_consistent(open_library(tmp_path))


def test_other_descriptor_is_refused(tmp_path, catalog_url):
    open_library(tmp_path, catalog_url=catalog_url).close()
    with pytest.raises(DescriptorMismatchError, match="new --home"):
        # a shared catalog decides, whichever home opens it
        open_library(tmp_path / "elsewhere" if catalog_url else tmp_path, descriptor="d2", catalog_url=catalog_url)


def test_auto_switches_to_ivf_past_threshold_and_stays_consistent(tmp_path):
    library = open_library(tmp_path, backend="auto", threshold=1100)
    images = [new_image(s) for s in range(1200)]
    for start in range(0, 1200, 100):
        library.catalog.add_images(f"i{start}", images[start : start + 100], library.descriptor)
    assert library.index_info()["kind"] == "ivf"
    assert_consistent(library)


def test_a_saved_index_of_another_kind_is_rebuilt_as_the_configured_one(tmp_path):
    library = open_library(tmp_path)
    library.catalog.add_batch([(f"i{s}", [new_image(s)]) for s in range(1200)], library.descriptor)
    library.close()
    for backend in ("ivf", "auto", "flat"):  # auto: 1200 vectors are under its threshold
        library = open_library(tmp_path, backend=backend)
        assert library.index_info()["kind"] == ("ivf" if backend == "ivf" else "flat")
        assert_consistent(library)
        library.close()


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from instrec.catalog import NewImage
    from instrec.config import IndexConfig
    from instrec.library import Library, OwnerTable
    url = sys.argv[3] or None
    lib = Library(sys.argv[1], dim=16, descriptor="d1", descriptor_info={}, index=IndexConfig(backend="flat"), catalog_url=url)
    rng = np.random.default_rng(int(sys.argv[2]))
    i = 0
    print("ready", flush=True)
    while True:
        v = rng.standard_normal((3, 16)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        images = [NewImage(f"{rng.integers(1 << 60):064x}", "x", 8, 8, v[j:j+1]) for j in range(3)]
        lib.catalog.add_images(f"inst{sys.argv[2]}-{i}", images, "d1")
        lib.sync()
        if i % 3 == 0 and i:
            lib.catalog.remove_instance(f"inst{sys.argv[2]}-{i - 2}")
        if i % 5 == 0:
            lib.save()
        i += 1
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.4, 0.9, 1.7])
def test_kill_minus_nine_mid_write_leaves_catalog_and_index_consistent(tmp_path, delay, catalog_url):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "lib"), str(n), catalog_url or ""], stdout=subprocess.PIPE)
        for n in range(2)
    ]  # two concurrent writers into the same home
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        assert all(proc.poll() is None for proc in procs), "a writer died before it was killed"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()
    library = open_library(tmp_path / "lib", catalog_url=catalog_url)
    stats = library.catalog.stats()
    assert stats["instances"] > 0
    assert stats["vectors"] == stats["images"]  # one vector per image: no orphans either way
    instances = library.catalog.list_instances(limit=10**6)
    assert all(i.image_count == 3 for i in instances), "an enrolment was half-written"
    assert_consistent(library)


def test_a_stale_library_saving_late_keeps_the_newer_saved_index(tmp_path):
    ahead, behind = open_library(tmp_path), open_library(tmp_path)
    ahead.catalog.add_images("a", [new_image(1)], ahead.descriptor)
    behind.sync()
    ahead.catalog.add_images("b", [new_image(2)], ahead.descriptor)
    ahead.sync()
    ahead.save()
    saved = json.loads((tmp_path / "index" / "state.json").read_text())
    behind.save()  # knows only "a": must neither overwrite nor delete what "ahead" saved
    assert json.loads((tmp_path / "index" / "state.json").read_text()) == saved
    assert (tmp_path / "index" / saved["file"]).exists()
    assert_consistent(open_library(tmp_path))


def test_libraries_saving_into_one_home_at_once_never_lose_a_file(tmp_path, catalog_url):
    """Each save deletes the files it replaced; a concurrent saver's half-written file is not one."""
    errors = []

    def write_and_save(n: int) -> None:
        library = open_library(tmp_path, catalog_url=catalog_url)  # its own lock file handle, as another process has
        try:
            for i in range(40):
                library.catalog.add_images(f"w{n}-{i}", [new_image(1000 * n + i)], library.descriptor)
                library.sync()
                library.save()
        except Exception as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=write_and_save, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    library = open_library(tmp_path, catalog_url=catalog_url)
    assert library.index_info()["vectors"] == 80
    assert_consistent(library)


def test_saving_an_ivf_index_keeps_only_the_current_files(tmp_path):
    library = open_library(tmp_path, backend="ivf")
    library.catalog.add_batch([(f"i{s}", [new_image(s)]) for s in range(1200)], library.descriptor)
    assert library.index_info()["kind"] == "ivf"
    library.save()
    library.catalog.remove_instance("i0")
    library.sync()
    library.close()
    files = sorted(p.name for p in (tmp_path / "index").iterdir() if ".faiss" in p.name)
    assert len(files) == 2 and files[1] == files[0] + ".coarse"
    assert_consistent(open_library(tmp_path, backend="ivf"))


def test_reindex_moves_a_library_between_backends_and_keeps_its_answers(tmp_path):
    library = open_library(tmp_path)
    for seed in range(20):
        library.catalog.add_images(f"i{seed}", [new_image(seed)], library.descriptor)
    library.close()
    moved = open_library(tmp_path, "milvus")
    assert moved.reindex()["kind"] == "milvus"
    assert_consistent(moved)
    moved.close()
    assert json.loads((tmp_path / "index" / "state.json").read_text())["kind"] == "milvus"
    back = open_library(tmp_path)
    assert back.reindex()["kind"] == "flat"
    assert_consistent(back)


REPLICA = textwrap.dedent("""
    import sys, numpy as np
    from instrec.catalog import NewImage
    from instrec.config import IndexConfig
    from instrec.library import Library
    lib = Library(sys.argv[1], dim=16, descriptor="d1", descriptor_info={"name": "d1"}, index=IndexConfig(backend="flat"),
                  catalog_url=sys.argv[2])
    print("ready", flush=True)
    for line in sys.stdin:  # a seed per line: enrol it, then acknowledge
        seed = int(line)
        v = np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32)
        lib.catalog.add_images(f"r{seed}", [NewImage(f"{seed:064x}", "x", 8, 8, v / np.linalg.norm(v))], "d1")
        print("enrolled", flush=True)
""")


def test_an_enrolment_acknowledged_by_one_replica_is_answered_by_another_at_once(tmp_path, postgres_url):
    """Two processes, two homes, one PostgreSQL catalog: the reader's first search after the
    writer's acknowledgement finds the new instance (every search replays the shared journal first)."""
    script = tmp_path / "replica.py"
    script.write_text(REPLICA)
    writer = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "a"), postgres_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        reader = open_library(tmp_path / "b", catalog_url=postgres_url)
        for seed in range(20):
            writer.stdin.write(f"{seed}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "enrolled"
            hits = reader.search(new_image(seed).vectors, 1)[0]
            found = reader.catalog.instances_by_pk([int(hits.instance_pks[0])])
            assert [instance.id for instance in found.values()] == [f"r{seed}"]
            assert hits.scores[0] == pytest.approx(1.0, abs=1e-5)
        assert_consistent(reader)
    finally:
        writer.kill()
        writer.wait()
        writer.stdin.close()
        writer.stdout.close()
