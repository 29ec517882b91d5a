import json
import tarfile
import threading

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from instrec.errors import InstrecError, NoLibraryError
from instrec.library.backup import backup, restore
from instrec.recognizer import Recognizer
from tests.photos import NEVER_ENROLLED, altered_views, sample_photo

QUERIES = {"rocket": "crop", "coffee": "rotated", "astronaut": "occluded"}


def _reopened(config, home, embedder) -> Recognizer:
    return Recognizer(config.with_overrides({"home": str(home)}), embedder=embedder)


def test_a_restored_library_gives_the_same_answers(recognizer, config, embedder, tmp_path):
    for name in ("rocket", "coffee", "astronaut", "chelsea"):
        recognizer.enroll([sample_photo(name)], instance_id=name)
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket-twin")  # one original, two images
    queries = [altered_views(sample_photo(name))[view] for name, view in QUERIES.items()] + [sample_photo(NEVER_ENROLLED[0])]
    before = [r.to_dict() for r in recognizer.recognize_many(queries, k=3)]
    original = recognizer.gallery.image_bytes(recognizer.gallery.images("rocket-twin")[0].id)

    report = backup(config.home, tmp_path / "lib.tar")
    assert (report.images, report.originals) == (5, 4)
    with tarfile.open(tmp_path / "lib.tar") as tar:
        assert not [name for name in tar.getnames() if name.startswith("index")]  # a cache, rebuilt on open
    assert restore(tmp_path / "lib.tar", tmp_path / "restored") == report

    with _reopened(config, tmp_path / "restored", embedder) as restored:
        after = [r.to_dict() for r in restored.recognize_many(queries, k=3)]
        assert restored.gallery.image_bytes(restored.gallery.images("rocket-twin")[0].id) == original
    for old, new in zip(before, after):
        assert [m["instance_id"] for m in new["matches"]] == [m["instance_id"] for m in old["matches"]]
        assert [m["score"] for m in new["matches"]] == pytest.approx([m["score"] for m in old["matches"]], abs=1e-5)
        assert (new["unknown"], new["threshold"]) == (old["unknown"], old["threshold"])


def test_a_backup_taken_while_another_thread_enrols_is_consistent(recognizer, config, embedder, tmp_path):
    recognizer.enroll([sample_photo("moon")], instance_id="first")
    photos = [sample_photo(name) for name in ("rocket", "coffee", "astronaut", "chelsea", "camera", "clock")]
    done = threading.Event()

    def enrol_and_remove() -> None:
        for number, photo in enumerate(photos):
            recognizer.enroll([photo], instance_id=f"item-{number}")
            if number % 2:  # removals delete originals: the backup must not keep rows without them
                recognizer.remove(f"item-{number - 1}")
        done.set()

    writer = threading.Thread(target=enrol_and_remove)
    writer.start()
    archives = []
    while not done.is_set() or not archives:
        archives.append(tmp_path / f"during-{len(archives)}.tar")
        backup(config.home, archives[-1])
    writer.join()
    assert len(archives) >= 2
    for number, archive in enumerate(archives):
        home = tmp_path / f"restored-{number}"
        restore(archive, home)  # refuses an archive whose catalog lacks an original
        with _reopened(config, home, embedder) as restored:
            instances = restored.gallery.list(limit=100)
            assert "first" in [i.id for i in instances]
            for instance in instances:
                for image in restored.gallery.images(instance.id):
                    assert restored.gallery.image_bytes(image.id)
            assert restored.stats()["index"]["vectors"] == restored.stats()["vectors"]


def test_restore_refuses_a_used_home_and_foreign_archives(recognizer, config, tmp_path):
    with pytest.raises(NoLibraryError):
        backup(tmp_path / "nothing-here", tmp_path / "x.tar")
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket")
    backup(config.home, tmp_path / "lib.tar")
    with pytest.raises(InstrecError, match="not empty"):
        restore(tmp_path / "lib.tar", config.home)
    foreign = tmp_path / "foreign.tar"
    (tmp_path / "notes.txt").write_text("hello")
    with tarfile.open(foreign, "w") as tar:
        tar.add(tmp_path / "notes.txt", "../notes.txt")
    with pytest.raises(InstrecError, match="not an instrec backup"):
        restore(foreign, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_backup_and_restore_commands(recognizer, config, tmp_path):
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket")
    runner = CliRunner()
    archive = str(tmp_path / "lib.tar")
    written = runner.invoke(app, ["backup", archive, "--home", str(config.home), "--json"])
    assert written.exit_code == 0 and json.loads(written.stdout)["images"] == 1
    restored = runner.invoke(app, ["restore", archive, "--home", str(tmp_path / "new"), "--json"])
    assert restored.exit_code == 0 and json.loads(restored.stdout)["originals"] == 1
    listing = runner.invoke(app, ["list", "--home", str(tmp_path / "new"), "--json"])
    assert [i["id"] for i in json.loads(listing.stdout)["instances"]] == ["rocket"]
    refused = runner.invoke(app, ["restore", archive, "--home", str(tmp_path / "new"), "--json"])
    assert refused.exit_code == 2 and "not empty" in json.loads(refused.stdout)["error"]["message"]


def test_a_faces_library_that_keeps_no_photos_is_backed_up_and_recognises_the_same(tmp_path):
    pytest.importorskip("dlib", reason="the faces extra is not installed")
    from instrec.config import Config

    astronaut = sample_photo("astronaut")
    views = altered_views(astronaut)
    config = Config.load(home=tmp_path / "people", overrides={"profile": "faces"})
    queries = [views["rotated"], views["relit"], sample_photo("coffee")]
    with Recognizer(config) as recognizer:
        recognizer.enroll([astronaut], instance_id="eileen")  # her photo kept
        with Recognizer(config.with_overrides({"faces.keep_originals": "false"})) as private:
            private.enroll([views["crop"]], instance_id="eileen-private")  # a photo never stored
        before = [r.to_dict() for r in recognizer.recognize_many(queries, k=2)]

    report = backup(config.home, tmp_path / "people.tar")
    assert (report.images, report.originals, report.without_originals) == (2, 1, 1)
    assert restore(tmp_path / "people.tar", tmp_path / "restored") == report

    with Recognizer(config.with_overrides({"home": str(tmp_path / "restored")})) as restored:
        after = [r.to_dict() for r in restored.recognize_many(queries, k=2)]
    for old, new in zip(before, after):
        assert [m["instance_id"] for m in new["matches"]] == [m["instance_id"] for m in old["matches"]]
        assert [m["score"] for m in new["matches"]] == pytest.approx([m["score"] for m in old["matches"]], abs=1e-5)
        assert new["unknown"] == old["unknown"]

    said = CliRunner().invoke(app, ["backup", str(tmp_path / "again.tar"), "--home", str(config.home), "--json"])
    assert said.exit_code == 0 and json.loads(said.stdout)["without_originals"] == 1
    assert "cannot re-embed" in said.stderr
