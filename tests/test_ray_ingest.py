"""Folder enrolment on a local Ray (instrec enroll DIR --ray): the same library as a local enrolment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from instrec.recognizer import Recognizer
from tests.photos import ENROLLED, altered_views, sample_photo, write_gallery

pytest.importorskip("ray.data", reason="the ray extra is not installed")
pytestmark = pytest.mark.slow  # a local Ray takes seconds to start


def test_a_ray_enrolment_answers_like_a_local_one_and_a_rerun_adds_nothing(tmp_path):
    gallery = write_gallery(tmp_path / "gallery")
    (gallery / "broken").mkdir()
    (gallery / "broken" / "x.jpg").write_bytes(b"not an image")
    home = tmp_path / "lib"
    runner = CliRunner()
    first = runner.invoke(app, ["enroll", str(gallery), "--home", str(home), "--ray", "--ray-workers", "2", "--json"])
    assert first.exit_code == 1, first.output  # one bad file: partly failed
    report = json.loads(first.stdout)
    assert (report["instances"], report["images_added"], len(report["errors"])) == (len(ENROLLED), len(ENROLLED), 1)

    again = runner.invoke(app, ["enroll", str(gallery), "--home", str(home), "--ray", "--json"])
    report = json.loads(again.stdout)
    assert (report["instances"], report["images_added"], report["duplicates"]) == (len(ENROLLED), 0, len(ENROLLED))

    with Recognizer.open(home) as recognizer:
        for name in ENROLLED:
            assert recognizer.recognize(altered_views(sample_photo(name))["crop"], k=1).matches[0].instance_id == name
