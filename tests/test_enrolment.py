"""Bulk enrolment (Recognizer.enroll_many): many instances from a generator, worked ahead, written in order."""

from __future__ import annotations

from instrec.recognizer import Recognizer
from tests.photos import ENROLLED, altered_views, sample_photo


def _entries(names, extra=()):
    """A generator, as a caller reading a large catalogue would pass it."""
    for name in names:
        yield name, [sample_photo(name)]
    yield from extra


def test_many_instances_from_a_generator_are_enrolled_and_answer_their_altered_views(recognizer: Recognizer):
    names = list(ENROLLED)[:6]
    seen = []
    report = recognizer.enroll_many(_entries(names), total=len(names), progress=lambda n, total, name: seen.append((n, name)))
    assert (report.instances, report.images_added, report.errors) == (len(names), len(names), [])
    assert seen == [(n, name) for n, name in enumerate(names, 1)]  # in the order given
    for name in names:
        result = recognizer.recognize(altered_views(sample_photo(name))["crop"], k=1)
        assert result.matches[0].instance_id == name


def test_bad_images_and_over_full_instances_are_reported_and_the_rest_enrolled(recognizer: Recognizer):
    most = recognizer.config.limits.max_images_per_instance
    good = list(ENROLLED)[:2]
    extra = [
        ("broken", [b"not an image"]),
        ("crowded", [sample_photo(good[0]).rotate(5 * i) for i in range(most + 1)]),
        ("half-bad", [sample_photo(good[1]).rotate(90), b"\xff\xd8 truncated"]),
    ]
    report = recognizer.enroll_many(_entries(good, extra))
    assert report.instances == len(good) + 1  # half-bad keeps its good shot
    assert {type(e).__name__ for e in report.errors} >= {"TooManyImagesError"}
    assert len(report.errors) == 3
    assert "crowded" not in {i.id for i in recognizer.gallery.list(limit=100)}


def test_enrolling_the_same_entries_again_adds_nothing(recognizer: Recognizer):
    names = list(ENROLLED)[:3]
    recognizer.enroll_many(_entries(names))
    again = recognizer.enroll_many(_entries(names))
    assert (again.images_added, again.duplicates, again.instances) == (0, len(names), len(names))
