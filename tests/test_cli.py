import json
import sys

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from tests.photos import NEVER_ENROLLED, altered_views, sample_photo

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


@pytest.mark.parametrize(
    "module, command, extra",
    [
        ("fastapi", ["serve", "--home", "{tmp}"], "service"),
        ("matplotlib", ["evaluate", "{tmp}", "--report", "{tmp}/report.html"], "report"),  # refused before evaluating
        ("skimage", ["demo", "--home", "{tmp}"], "demo"),
    ],
)
def test_a_command_names_the_extra_it_misses(tmp_path, monkeypatch, module, command, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what a module that is not installed looks like to importlib
    result = runner.invoke(app, [arg.format(tmp=tmp_path) for arg in command])
    assert result.exit_code == 2
    assert f"pip install 'instrec[{extra}]'" in " ".join(result.output.split())


def test_names_from_the_user_print_as_they_are_not_as_markup(tmp_path):
    def shown(*args: str) -> str:  # the output without the line breaks and padding of rich's layout
        return "".join(invoke(*args).output.split())

    home = str(tmp_path / "lib")
    catalog = tmp_path / "catalog"
    for instance, photo in {"[bold]mug": "astronaut", "coffee": "coffee", "rocket": "rocket"}.items():
        (catalog / instance).mkdir(parents=True)
        sample_photo(photo).save(catalog / instance / "[bold]a.jpg")
    (catalog / "[bold]mug" / "[red]b.jpg").write_bytes(b"not an image")
    assert "skipped" + str(catalog / "[bold]mug" / "[red]b.jpg") in shown("enroll", str(catalog), "--home", home)
    query = tmp_path / "[bold]q.jpg"
    sample_photo("astronaut").save(query)
    answer = shown("recognize", str(query), "--home", home, "-k", "1")
    assert f"{query}:[bold]mug" in answer and "│1│[bold]mug│[bold]mug│" in answer
    assert "│[bold]mug│[bold]mug│1│" in shown("list", "--home", home)
    assert "removed[bold]mug" in shown("remove", "[bold]mug", "--home", home)
    assert "[red]b.jpg" in shown("whiten", str(catalog), "--out", str(tmp_path / "w.npz"), "--dims", "1")
    refused = runner.invoke(app, ["recognize", str(catalog / "[bold]mug" / "[red]b.jpg"), "--home", home])
    assert refused.exit_code == 2 and "[red]b.jpg" in "".join(refused.output.split())
