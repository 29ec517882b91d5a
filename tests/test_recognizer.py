"""The engine through its public API, on real photos (scikit-image samples)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instrec.config import Config
from instrec.errors import (
    CorruptImageError,
    DuplicateInstanceError,
    ImageError,
    InstrecError,
    UnknownImageError,
    UnknownInstanceError,
)
from instrec.decision import default_calibration
from instrec.rerank import inlier_evidence
from instrec.recognizer import Recognizer
from tests.photos import ENROLLED, NEVER_ENROLLED, altered_views, sample_photo


@pytest.fixture(scope="module")
def enrolled_home(tmp_path_factory, embedder, gallery_dir) -> Path:
    """The gallery enrolled and calibrated once for the module (most of a test's cost); tests get copies."""
    home = tmp_path_factory.mktemp("enrolled") / "library"
    with Recognizer(Config().with_overrides({"home": str(home)}), embedder=embedder) as recognizer:
        report = recognizer.enroll_folder(gallery_dir)
        assert report.instances == len(ENROLLED) and not report.errors
        recognizer.calibrate()
    return home


@pytest.fixture
def enrolled(enrolled_home, config, embedder):
    """A library of its own at ``config.home``, holding the gallery, calibrated."""
    shutil.copytree(enrolled_home, config.home)
    with Recognizer(config, embedder=embedder) as recognizer:
        yield recognizer


@pytest.mark.slow
def test_recognises_altered_views_of_enrolled_photos(enrolled):
    correct = total = 0
    for name in ENROLLED:
        for view in altered_views(sample_photo(name), seed=1).values():
            result = enrolled.recognize(view, k=3)
            total += 1
            correct += (not result.unknown) and result.matches[0].instance_id == name
            assert len(result.matches) == 3
            assert [m.score for m in result.matches] == sorted((m.score for m in result.matches), reverse=True)
            assert 0.0 <= result.matches[0].confidence <= 1.0
    assert correct / total >= 0.9


@pytest.mark.slow
def test_never_enrolled_photos_mostly_come_back_unknown(enrolled):
    unknown = [enrolled.recognize(sample_photo(name)).unknown for name in NEVER_ENROLLED]
    assert sum(unknown) >= 2
    # the nearest candidates are still listed for an unknown answer
    assert enrolled.recognize(sample_photo("text")).matches


@pytest.mark.slow
def test_enrolling_the_folder_again_adds_nothing(enrolled, gallery_dir):
    before = enrolled.stats()
    report = enrolled.enroll_folder(gallery_dir)
    assert report.images_added == 0 and report.duplicates == len(ENROLLED)
    after = enrolled.stats()
    assert (after["instances"], after["images"], after["vectors"]) == (before["instances"], before["images"], before["vectors"])


@pytest.mark.slow
def test_inputs_paths_bytes_pil_and_arrays_agree(enrolled, gallery_dir):
    path = gallery_dir / "coffee" / "coffee.jpg"
    data = path.read_bytes()
    pil = Image.open(io.BytesIO(data))
    results = [enrolled.recognize(x) for x in (path, str(path), data, pil, np.asarray(pil.convert("RGB")))]
    assert {r.matches[0].instance_id for r in results} == {"coffee"}
    assert max(r.matches[0].score for r in results) - min(r.matches[0].score for r in results) < 1e-4


@pytest.mark.slow
def test_remove_makes_an_instance_unreachable(enrolled):
    enrolled.remove("coffee")
    result = enrolled.recognize(sample_photo("coffee"), k=20)
    assert "coffee" not in [m.instance_id for m in result.matches]
    with pytest.raises(UnknownInstanceError):
        enrolled.remove("coffee")
    with pytest.raises(UnknownInstanceError):
        enrolled.gallery.get("coffee")


def test_new_instance_is_searchable_immediately(recognizer):
    recognizer.enroll([sample_photo("astronaut")], instance_id="astro", label="Astronaut", metadata={"k": "v"})
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket")
    match = recognizer.recognize(altered_views(sample_photo("astronaut"))["crop"]).matches[0]
    assert (match.instance_id, match.label, match.metadata) == ("astro", "Astronaut", {"k": "v"})
    assert recognizer.gallery.image_bytes(match.image_id)[:2] == b"\x89P"  # the stored original (PNG of the array)


def test_two_homes_on_one_postgres_catalog_share_instances_originals_and_removals(tmp_path, config, embedder, postgres_url):
    """Replicas: what one home enrols the other answers, shows and removes; the originals are in the catalog."""
    homes = [config.with_overrides({"home": str(tmp_path / name), "catalog.url": postgres_url}) for name in ("a", "b")]
    with Recognizer(homes[0], embedder=embedder) as one, Recognizer(homes[1], embedder=embedder) as other:
        one.enroll([sample_photo("astronaut")], instance_id="astro")
        one.enroll([sample_photo("rocket")], instance_id="rocket")
        match = other.recognize(altered_views(sample_photo("astronaut"))["crop"]).matches[0]
        assert match.instance_id == "astro"
        assert other.gallery.image_bytes(match.image_id) == one.gallery.image_bytes(match.image_id)
        other.remove("astro")
        assert all(m.instance_id != "astro" for m in one.recognize(sample_photo("astronaut")).matches)
    assert not any((tmp_path / name / "images").exists() for name in ("a", "b"))


def test_duplicate_enrolments(recognizer):
    photo = sample_photo("chelsea")
    first = recognizer.enroll([photo, photo], instance_id="cat")
    assert len(first.added) == 1  # same content twice in one call
    again = recognizer.enroll([photo], instance_id="cat")
    assert again.added == [] and len(again.duplicates) == 1
    with pytest.raises(DuplicateInstanceError):
        recognizer.enroll([sample_photo("coffee")], instance_id="cat", new=True)
    assert recognizer.gallery.get("cat").image_count == 1


def test_enrolling_into_an_existing_instance_refuses_an_unknown_id(recognizer):
    with pytest.raises(UnknownInstanceError):
        recognizer.enroll([sample_photo("coffee")], instance_id="mug", existing=True)
    assert recognizer.gallery.count() == 0  # nothing was created
    recognizer.enroll([sample_photo("coffee")], instance_id="mug", label="Mug")
    more = recognizer.enroll([sample_photo("coffee"), sample_photo("rocket")], instance_id="mug", existing=True)
    assert len(more.added) == 1 and len(more.duplicates) == 1
    assert (more.instance.label, more.instance.image_count) == ("Mug", 2)
    with pytest.raises(ValueError):
        recognizer.enroll([sample_photo("rocket")], existing=True)  # which instance?


def test_the_gallery_view_reads_and_edits_what_is_enrolled(recognizer):
    gallery = recognizer.gallery
    assert gallery.count() == 0 and gallery.list() == []  # a view opens nothing until asked
    recognizer.enroll([sample_photo("coffee"), sample_photo("chelsea")], instance_id="mug", label="Blue mug")
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket", metadata={"k": 1})
    assert [i.id for i in gallery.list()] == ["mug", "rocket"] and gallery.count() == 2
    assert [i.id for i in gallery.list(offset=1, limit=1)] == ["rocket"]
    assert [i.id for i in gallery.list(search="blue")] == ["mug"] and gallery.count("blue") == 1
    images = gallery.images("mug")
    assert len(images) == 2 and gallery.get("mug").image_count == 2
    assert gallery.image(images[0].id) == images[0]
    assert gallery.image_bytes(images[0].id)[:2] == b"\x89P"
    updated = gallery.update("rocket", label="Rocket", metadata={"k": 2})
    assert (updated.label, updated.metadata) == ("Rocket", {"k": 2}) and gallery.get("rocket") == updated
    with pytest.raises(UnknownInstanceError):
        gallery.get("nothing")
    with pytest.raises(UnknownImageError):
        gallery.image(10**9)


def test_bad_files_raise_typed_errors_or_are_skipped(recognizer, tmp_path):
    broken = tmp_path / "broken.jpg"
    good = tmp_path / "good.jpg"
    sample_photo("coffee").save(good)
    broken.write_bytes(good.read_bytes()[:400])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        recognizer.enroll([good, broken], instance_id="x")
    assert recognizer.gallery.count() == 0  # nothing was written for the failed call
    result = recognizer.enroll([good, broken, empty], instance_id="x", skip_bad=True)
    assert len(result.added) == 1 and {e.source for e in result.errors} == {str(broken), str(empty)}
    with pytest.raises(ImageError):
        recognizer.recognize(empty)


def test_folder_enrolment_reports_bad_files_and_continues(recognizer, tmp_path):
    folder = tmp_path / "catalog"
    for name in ("coffee", "rocket"):
        (folder / name).mkdir(parents=True)
        sample_photo(name).save(folder / name / "a.jpg")
    (folder / "rocket" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    (folder / "rocket" / "fake.png").write_text("not an image")
    (folder / "only-bad").mkdir()
    (folder / "only-bad" / "x.jpg").write_bytes(b"\xff\xd8\xff")
    report = recognizer.enroll_folder(folder)
    assert report.instances == 2 and report.images_added == 2
    assert sorted(e.source.rsplit("/", 1)[-1] for e in report.errors) == ["fake.png", "x.jpg"]


def test_an_instance_with_two_shots_is_ranked_by_its_best(recognizer):
    recognizer.enroll([sample_photo("coffee"), altered_views(sample_photo("coffee"))["relit"]], instance_id="coffee")
    recognizer.enroll([sample_photo("rocket")], instance_id="rocket")
    result = recognizer.recognize(altered_views(sample_photo("coffee"), seed=3)["crop"])
    assert result.matches[0].instance_id == "coffee"


@pytest.mark.slow
def test_calibration_threshold_separates_impostors(enrolled):
    calibration = enrolled.calibrate(target_far=0.1)
    assert calibration.impostor > 0
    assert enrolled.threshold == calibration.threshold
    assert calibration.confidence(calibration.threshold + 0.2) > calibration.confidence(calibration.threshold - 0.2)
    with pytest.raises(InstrecError):
        enrolled.calibrate(target_far=1.5)


@pytest.mark.slow
def test_a_threshold_calibrated_under_other_scoring_settings_is_not_used(enrolled, config, embedder):
    calibrated = enrolled.calibrate(target_far=0.1).threshold
    enrolled.close()  # settings are per process: reopen the same library under others
    with Recognizer(config.with_overrides({"decision.top_k": "7"}), embedder=embedder) as same_scoring:
        assert same_scoring.threshold == calibrated
    with Recognizer(config.with_overrides({"tuning.rerank.inlier_midpoint": "20"}), embedder=embedder) as other:
        assert other.calibration.source == "default"  # not calibrated under these settings yet
        assert other.calibrate(target_far=0.1).threshold != calibrated


@pytest.mark.slow
def test_scores_against_competitors_are_calibrated_and_returned_as_such(enrolled, config, embedder):
    photo = altered_views(sample_photo(ENROLLED[0]))["crop"]
    lowered = enrolled.recognize(photo, k=3).matches  # the default: against competitors
    lowered_threshold = enrolled.calibrate(target_far=0.1).threshold
    enrolled.close()
    with Recognizer(config.with_overrides({"tuning.decision.competitor_weight": "0"}), embedder=embedder) as plain:
        assert plain.calibration == default_calibration(None, 0.0)  # the lowered scores' threshold does not apply
        raw = plain.recognize(photo, k=plain.config.tuning.decision.competitors + 1).matches
        assert plain.calibrate(target_far=0.1).threshold > lowered_threshold
    decision = config.tuning.decision
    assert [m.instance_id for m in lowered] == [m.instance_id for m in raw[:3]]
    rivals = sum(m.score for m in raw[1 : decision.competitors + 1]) / decision.competitors
    geometry = inlier_evidence(raw[0].inliers, config.tuning.rerank)  # a channel of its own, not lowered
    assert lowered[0].score == pytest.approx(max(raw[0].score - decision.competitor_weight * rivals, geometry), abs=1e-6)


def test_calibration_needs_an_instance_and_works_with_one(recognizer):
    with pytest.raises(InstrecError, match="at least one"):
        recognizer.calibrate()
    recognizer.enroll([sample_photo("coffee")], instance_id="coffee")
    calibration = recognizer.calibrate()  # the shipped strangers are the impostors
    assert calibration.impostor > 0 and calibration.genuine == 2 and calibration.images == 1


@pytest.mark.slow
def test_negatives_set_the_threshold_from_query_like_impostors(enrolled, config, embedder):
    negatives = [sample_photo(name) for name in NEVER_ENROLLED]
    calibration = enrolled.calibrate(target_far=0.01, negatives=negatives)
    assert calibration.impostor == len(negatives) and "negatives" in calibration.source
    best = [enrolled.recognize(n, k=1).matches[0].score for n in negatives]
    assert calibration.measured_threshold > max(best)  # before three scores are blended with the prior
    one = config.with_overrides({"home": str(config.home.parent / "one")})
    with Recognizer(one, embedder=embedder) as single:  # one instance + negatives is enough
        single.enroll([sample_photo("coffee")], instance_id="coffee")
        assert single.calibrate(negatives=negatives).impostor == len(negatives)


def test_a_library_of_one_instance_does_not_accept_strangers(recognizer):
    """A new deployment starts with one instance: the prior, not that instance's look, decides."""
    recognizer.enroll([sample_photo("coffee")], instance_id="coffee")
    strangers = [sample_photo(name) for name in NEVER_ENROLLED + ("astronaut", "rocket", "chelsea", "camera", "coins")]
    assert sum(not r.unknown for r in recognizer.recognize_many(strangers)) <= 1
    assert not recognizer.recognize(altered_views(sample_photo("coffee"), seed=2)["crop"]).unknown


@pytest.mark.slow
def test_a_changed_gallery_is_recalibrated_in_the_background(recognizer):
    for name in ENROLLED[:3]:
        recognizer.enroll([sample_photo(name)], instance_id=name)
    assert recognizer.calibration.source == "prior" and recognizer.stats()["calibration_stale"]
    assert recognizer.recalibrate_in_background()
    assert not recognizer.recalibrate_in_background()  # one at a time
    deadline = time.monotonic() + 120
    while recognizer.calibration.source == "prior" and time.monotonic() < deadline:
        time.sleep(0.2)
    calibration = recognizer.calibration
    assert calibration.images == 3 and calibration.impostor > 0 and not recognizer.stats()["calibration_stale"]
    assert not recognizer.recalibrate_in_background()  # nothing changed since
    recognizer.enroll([sample_photo(ENROLLED[3])], instance_id=ENROLLED[3])
    assert recognizer.stats()["calibration_stale"]  # a third more images


def test_closing_stops_a_background_calibration_before_the_library_closes(config, embedder):
    rec = Recognizer(config, embedder=embedder)
    for name in ENROLLED[:3]:
        rec.enroll([sample_photo(name)], instance_id=name)
    assert rec.recalibrate_in_background()
    rec.close()
    assert not any(thread.name == "instrec-calibrate" for thread in threading.enumerate())
    assert not rec.recalibrate_in_background()  # closed: none is started again


@pytest.mark.slow
def test_the_same_photo_under_two_ids_is_kept_out_of_the_impostors(recognizer):
    for name in ENROLLED[:5]:
        recognizer.enroll([sample_photo(name)], instance_id=name)
    alone = recognizer.calibrate()
    recognizer.enroll([sample_photo(ENROLLED[0])], instance_id="the-same-photo")
    twice = recognizer.calibrate()
    assert alone.duplicates == 0 and twice.duplicates == 2 and "share a picture" in twice.describe()
    assert twice.measured_threshold <= alone.measured_threshold + 0.05  # its twin's score is no stranger's


def test_explicit_threshold_overrides_calibration(config, embedder):
    with Recognizer(config.with_overrides({"decision.threshold": "1.5"}), embedder=embedder) as rec:  # above any score
        rec.enroll([sample_photo("coffee")], instance_id="coffee")
        assert rec.recognize(altered_views(sample_photo("coffee"))["crop"]).unknown


def test_close_closes_the_catalog_connections_of_every_thread(config, embedder):
    """A server closes its recognizer from a worker thread; the connections that other threads
    opened must close too. SQLite removes the write-ahead log only when the last one has closed."""
    rec = Recognizer(config, embedder=embedder)
    rec.enroll([sample_photo("coffee")], instance_id="coffee")
    wal = config.home / "catalog.sqlite-wal"
    opened, finish = threading.Barrier(5), threading.Event()
    counts_after = []

    def reader() -> None:
        rec.gallery.count()  # opens this thread's connection
        opened.wait()
        finish.wait()  # the thread (and its connection) outlives close()
        counts_after.append(rec.gallery.count())  # then it opens a fresh one

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    opened.wait()
    assert wal.exists()
    closer = threading.Thread(target=rec.close)
    closer.start()
    closer.join()
    try:
        assert not wal.exists(), "a connection is still open after close()"
    finally:
        finish.set()
        for thread in readers:
            thread.join()
    assert counts_after == [1, 1, 1, 1] and rec.gallery.count() == 1  # still usable after close
    rec.close()
    assert not wal.exists()


@pytest.mark.parametrize("threads", ["1", "0"])
def test_runtime_threads_also_set_faiss_threads(config, embedder, threads):
    """The Python API applies ``runtime.threads`` to FAISS as ``instrec serve`` does (0 = every core)."""
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(7)
        with Recognizer(config.with_overrides({"runtime.threads": threads}), embedder=embedder) as rec:
            rec.gallery.count()
            assert faiss.omp_get_max_threads() == (int(threads) or len(os.sched_getaffinity(0)))
    finally:
        faiss.omp_set_num_threads(before)


@pytest.mark.slow
def test_stats_record_the_descriptor(enrolled):
    stats = enrolled.stats()
    assert stats["instances"] == len(ENROLLED) and stats["vectors"] == len(ENROLLED)
    assert stats["descriptor"]["backbone"] == "efficientnet_lite0" and len(stats["descriptor"]["id"]) == 16
    assert stats["index"]["kind"] == "flat"


ENROLLER = textwrap.dedent("""
    import sys
    from instrec.config import Config
    from instrec.recognizer import Recognizer
    with Recognizer(Config.load(home=sys.argv[1], overrides={"catalog.url": sys.argv[3]})) as rec:
        rec.library
        print("ready", flush=True)
        rec.enroll_folder(sys.argv[2])
""")


@pytest.mark.slow
def test_killed_folder_enrolment_resumes_to_the_same_result(tmp_path, gallery_dir, catalog_url):
    home = tmp_path / "lib"
    script = tmp_path / "enrol.py"
    script.write_text(ENROLLER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home), str(gallery_dir), catalog_url or "none"], stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Recognizer.open(home, **{"catalog.url": catalog_url}) as rec:
        partial = rec.gallery.count()
        report = rec.enroll_folder(gallery_dir)
        assert rec.gallery.count() == len(ENROLLED)
        assert report.images_added == len(ENROLLED) - partial
        stats = rec.stats()
        assert stats["images"] == stats["vectors"] == stats["index"]["vectors"] == len(ENROLLED)


def test_keypoints_found_on_a_side_thread_change_no_answer(config, embedder):
    """With a core spare (runtime.threads=1 of 2+) keypoints are found while the photo is embedded;
    answers are those of the sequential path, and after close() a query starts the threads again."""
    answers = {}
    for threads in (0, 1):
        rec = Recognizer(config.with_overrides({"runtime.threads": threads}), embedder=embedder)
        if threads == 0:
            rec.enroll([sample_photo("coffee")], instance_id="coffee")
            rec.enroll([sample_photo("rocket")], instance_id="rocket")
        answers[threads] = rec.recognize(sample_photo("rocket"))
        rec.close()
        again = rec.recognize(sample_photo("rocket"))
        rec.close()
        assert again.matches[0].score == pytest.approx(answers[threads].matches[0].score)
    assert answers[0].matches[0].instance_id == answers[1].matches[0].instance_id == "rocket"
    assert answers[1].matches[0].inliers == answers[0].matches[0].inliers > 20
    assert answers[1].matches[0].score == pytest.approx(answers[0].matches[0].score)
