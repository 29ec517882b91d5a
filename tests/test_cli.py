import json

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from instrec.demo import NEVER_ENROLLED, altered_views, sample_photo

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_enroll_recognize_list_stats_remove(tmp_path, gallery_dir):
    home = str(tmp_path / "lib")
    report = json.loads(invoke("enroll", str(gallery_dir), "--home", home, "--json").stdout)
    assert report["instances"] >= 10 and report["threshold"] is not None
    query = tmp_path / "q.jpg"
    altered_views(sample_photo("rocket"))["crop"].save(query)
    answer = json.loads(invoke("recognize", str(query), "--home", home, "--json", "-k", "3").stdout)
    assert answer["unknown"] is False and answer["matches"][0]["instance_id"] == "rocket"
    assert len(answer["matches"]) == 3 and "total" in answer["timing_ms"]
    listing = json.loads(invoke("list", "--home", home, "--search", "rock", "--json").stdout)
    assert [i["id"] for i in listing["instances"]] == ["rocket"]
    stats = json.loads(invoke("stats", "--home", home, "--json").stdout)
    assert stats["instances"] == report["instances"]
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    for name in NEVER_ENROLLED:
        sample_photo(name).save(negatives / f"{name}.jpg")
    calibration = json.loads(invoke("calibrate", "--home", home, "--negatives", str(negatives), "--json").stdout)
    assert calibration["impostor"] == len(NEVER_ENROLLED) and "negatives" in calibration["source"]
    invoke("remove", "rocket", "--home", home)
    assert json.loads(invoke("stats", "--home", home, "--json").stdout)["instances"] == report["instances"] - 1


def test_errors_exit_nonzero_with_a_message(tmp_path):
    home = str(tmp_path / "lib")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["recognize", str(bad), "--home", home])
    assert result.exit_code == 2 and "bad.jpg" in result.output
    result = runner.invoke(app, ["remove", "ghost", "--home", home])
    assert result.exit_code == 2 and "ghost" in result.output
    result = runner.invoke(app, ["stats", "--home", home, "--set", "index.backnd=flat"])
    assert result.exit_code == 2 and "unknown setting" in result.output


@pytest.mark.slow
def test_demo_runs(tmp_path):
    result = invoke("demo", "--home", str(tmp_path / "demo"))
    assert "answered correctly" in result.stdout


@pytest.mark.slow
def test_whiten_fits_a_map_a_library_then_uses(tmp_path, gallery_dir):
    fitted = tmp_path / "w.npz"
    result = json.loads(invoke("whiten", str(gallery_dir), "--out", str(fitted), "--dims", "4", "--json").stdout)
    assert result["dims"] == 4 and result["pool"] >= 10 and fitted.is_file()
    home = str(tmp_path / "lib")
    invoke("enroll", str(gallery_dir), "--home", home, "--set", f"descriptor.whitening={fitted}")
    stats = json.loads(invoke("stats", "--home", home, "--json", "--set", f"descriptor.whitening={fitted}").stdout)
    assert stats["instances"] >= 10
    refused = runner.invoke(app, ["stats", "--home", home])  # the raw descriptor is another one
    assert refused.exit_code == 2 and "whitening" in refused.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["whiten", str(empty), "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "no images" in result.output
