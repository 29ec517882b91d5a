import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import instrec

from instrec.cli import app
from tests.photos import NEVER_ENROLLED, altered_views, sample_photo

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def flat(text: str) -> str:
    """``text`` without the line breaks and padding of rich's layout."""
    return "".join(text.split())


@pytest.mark.slow
def test_enroll_recognize_list_stats_remove(tmp_path, gallery_dir):
    home = str(tmp_path / "lib")
    report = json.loads(invoke("enroll", str(gallery_dir), "--home", home, "--json").stdout)
    assert report["instances"] >= 10 and report["threshold"] is not None
    query = tmp_path / "q.jpg"
    altered_views(sample_photo("rocket"))["crop"].save(query)
    (answer,) = json.loads(invoke("recognize", str(query), "--home", home, "--json", "-k", "3").stdout)["results"]
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
    home = tmp_path / "typo"
    for command in (["stats"], ["list"], ["remove", "ghost"], ["recognize", str(tmp_path / "q.jpg")], ["extract-local"]):
        result = runner.invoke(app, [*command, "--home", str(home)])
        assert result.exit_code == 2 and "nolibraryat" in flat(result.stderr), command
    assert not home.exists()  # a mistyped --home is not made into an empty library
    result = runner.invoke(app, ["stats", "--home", str(home), "--set", "index.backnd=flat"])
    assert result.exit_code == 2 and "unknown setting" in result.output
    refused = runner.invoke(app, ["stats", "--home", str(home), "--json"])
    assert refused.exit_code == 2 and json.loads(refused.stdout)["error"]["code"] == "no_library"


def _small_catalog(folder, bad: str | None = None):
    """Three instances of one photo each, and optionally a file that is not an image in one of them."""
    for name in ("astronaut", "coffee", "rocket"):
        (folder / name).mkdir(parents=True)
        sample_photo(name).save(folder / name / f"{name}.jpg")
    if bad is not None:
        (folder / "coffee" / bad).write_bytes(b"not an image")
    return folder


def test_a_batch_answers_the_good_files_and_reports_the_bad_ones(tmp_path):
    home = str(tmp_path / "lib")
    enrolled = runner.invoke(app, ["enroll", str(_small_catalog(tmp_path / "catalog", bad="bad.jpg")), "--home", home])
    assert enrolled.exit_code == 1  # one file skipped, the rest enrolled
    assert "enrolled3imagesof3instances" in flat(enrolled.stdout) and "bad.jpg" in flat(enrolled.stderr)
    good, bad = tmp_path / "q.jpg", tmp_path / "catalog" / "coffee" / "bad.jpg"
    altered_views(sample_photo("rocket"))["crop"].save(good)
    batch = runner.invoke(app, ["recognize", str(good), str(bad), "--home", home, "--json", "-k", "1"])
    assert batch.exit_code == 1
    answered, failed = json.loads(batch.stdout)["results"]
    assert answered["image"] == str(good) and answered["matches"][0]["instance_id"] == "rocket"
    assert failed == {"image": str(bad), "error": {"code": "not_an_image", "message": failed["error"]["message"]}}
    assert "bad.jpg" in failed["error"]["message"]
    table = runner.invoke(app, ["recognize", str(bad), str(good), "--home", home, "-k", "1"])
    assert table.exit_code == 1 and "rocket" in table.stdout and "bad.jpg" in flat(table.stderr)
    only_bad = runner.invoke(app, ["recognize", str(bad), "--home", home, "--json"])
    assert only_bad.exit_code == 2 and len(json.loads(only_bad.stdout)["results"]) == 1


def test_an_enrolment_where_nothing_could_be_enrolled_fails(tmp_path):
    catalog = tmp_path / "catalog"
    (catalog / "mug").mkdir(parents=True)
    (catalog / "mug" / "a.jpg").write_bytes(b"not an image")
    result = runner.invoke(app, ["enroll", str(catalog), "--home", str(tmp_path / "lib"), "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["errors"][0]["source"].endswith("a.jpg")
    (catalog / "mug" / "a.jpg").unlink()
    result = runner.invoke(app, ["enroll", str(catalog), "--home", str(tmp_path / "lib"), "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["message"].startswith("no images under")


def test_one_json_shape_whatever_the_count_and_readable_tables(tmp_path):
    home = str(tmp_path / "lib")
    invoke("enroll", str(_small_catalog(tmp_path / "catalog")), "--home", home)
    query = tmp_path / "q.jpg"
    sample_photo("coffee").save(query)
    for count in (1, 2):
        results = json.loads(invoke("recognize", *[str(query)] * count, "--home", home, "--json").stdout)["results"]
        assert len(results) == count and results[0]["matches"][0]["instance_id"] == "coffee"
    assert json.loads(invoke("remove", "coffee", "--home", home, "--json").stdout) == {"removed": "coffee"}
    table = invoke("stats", "--home", home).stdout
    assert "index.kind" in table and "{" not in table  # nested values flattened into dotted keys
    threshold = json.loads(invoke("stats", "--home", home, "--json").stdout)["threshold"]
    assert f"{threshold:.4g}" in table and repr(threshold) not in table
    assert invoke("--version").stdout.strip() == f"instrec {instrec.__version__}"


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
    def shown(*args: str) -> str:
        return flat(invoke(*args).output)

    home = str(tmp_path / "lib")
    catalog = tmp_path / "catalog"
    for instance, photo in {"[bold]mug": "astronaut", "coffee": "coffee", "rocket": "rocket"}.items():
        (catalog / instance).mkdir(parents=True)
        sample_photo(photo).save(catalog / instance / "[bold]a.jpg")
    (catalog / "[bold]mug" / "[red]b.jpg").write_bytes(b"not an image")
    enrolled = runner.invoke(app, ["enroll", str(catalog), "--home", home])
    assert enrolled.exit_code == 1 and "skipped" + str(catalog / "[bold]mug" / "[red]b.jpg") in flat(enrolled.stderr)
    query = tmp_path / "[bold]q.jpg"
    sample_photo("astronaut").save(query)
    answer = shown("recognize", str(query), "--home", home, "-k", "1")
    assert f"{query}:[bold]mug" in answer and "│1│[bold]mug│[bold]mug│" in answer
    assert "│[bold]mug│[bold]mug│1│" in shown("list", "--home", home)
    assert "removed[bold]mug" in shown("remove", "[bold]mug", "--home", home)
    assert "[red]b.jpg" in shown("whiten", str(catalog), "--out", str(tmp_path / "w.npz"), "--dims", "1")
    refused = runner.invoke(app, ["recognize", str(catalog / "[bold]mug" / "[red]b.jpg"), "--home", home])
    assert refused.exit_code == 2 and "[red]b.jpg" in flat(refused.output)


def test_recognize_loads_only_what_it_uses(tmp_path):
    """A new process answers from the cached ONNX graph: torch, onnx, the service's and the report's
    packages (seconds of imports together) stay unloaded."""
    home = str(tmp_path / "lib")
    invoke("enroll", str(_small_catalog(tmp_path / "catalog")), "--home", home)
    query = tmp_path / "q.jpg"
    sample_photo("rocket").save(query)
    program = f"""
import sys
from instrec.cli import app
try:
    app(["recognize", {str(query)!r}, "--home", {home!r}, "--json"])
except SystemExit:
    pass
print(sorted(name for name in ("torch", "onnx", "fastapi", "matplotlib") if name in sys.modules), file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["results"][0]["matches"][0]["instance_id"] == "rocket"
    assert done.stderr.strip() == "[]"


def test_an_instance_takes_at_most_the_configured_number_of_images(tmp_path):
    catalog = tmp_path / "catalog"
    (catalog / "mug").mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea"):
        sample_photo(name).save(catalog / "mug" / f"{name}.jpg")
    (catalog / "rocket").mkdir()
    sample_photo("rocket").save(catalog / "rocket" / "rocket.jpg")
    args = ["enroll", str(catalog), "--home", str(tmp_path / "lib"), "--json", "--set", "limits.max_images_per_instance=2"]
    result = runner.invoke(app, args)
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["instances"] == 1
    assert report["errors"][0]["source"] == "mug" and "limits.max_images_per_instance" in report["errors"][0]["error"]


def test_reindex_moves_a_library_to_milvus_and_it_answers_the_same(tmp_path):
    home = str(tmp_path / "lib")
    invoke("enroll", str(_small_catalog(tmp_path / "catalog")), "--home", home)
    query = tmp_path / "q.jpg"
    sample_photo("coffee").save(query)
    (before,) = json.loads(invoke("recognize", str(query), "--home", home, "--json").stdout)["results"]
    moved = json.loads(invoke("reindex", "--home", home, "--set", "index.backend=milvus", "--json").stdout)
    assert moved["kind"] == "milvus" and moved["vectors"] > 0
    milvus = ("--home", home, "--set", "index.backend=milvus", "--json")
    (after,) = json.loads(invoke("recognize", str(query), *milvus).stdout)["results"]
    assert [m["instance_id"] for m in after["matches"]] == [m["instance_id"] for m in before["matches"]]
    assert after["matches"][0]["score"] == pytest.approx(before["matches"][0]["score"], abs=1e-4)


def test_collections_of_one_home_from_the_command_line(tmp_path):
    home = str(tmp_path / "lib")
    shoes = ("--home", home, "--collection", "shoes")
    invoke("enroll", str(_small_catalog(tmp_path / "catalog")), *shoes)
    assert json.loads(invoke("stats", *shoes, "--json").stdout)["collection"] == "shoes"
    listed = json.loads(invoke("list", *shoes, "--json").stdout)["instances"]
    assert [i["id"] for i in listed] == ["astronaut", "coffee", "rocket"]
    refused = runner.invoke(app, ["list", "--home", home, "--json"])  # the home itself holds no library yet
    assert refused.exit_code == 2 and json.loads(refused.stdout)["error"]["code"] == "no_library"
    ghost = runner.invoke(app, ["list", "--home", home, "--collection", "ghost"])
    assert ghost.exit_code == 2 and "nocollection'ghost'" in flat(ghost.stderr)
    unsafe = runner.invoke(app, ["list", "--home", home, "--collection", "../shoes"])
    assert unsafe.exit_code == 2 and "collection" in unsafe.output
    assert json.loads(invoke("collections", "--home", home, "--json").stdout)["collections"] == ["shoes"]
    backup = tmp_path / "shoes.tar"
    invoke("backup", str(backup), *shoes)
    invoke("restore", str(backup), "--home", home, "--collection", "boots")
    assert json.loads(invoke("stats", "--home", home, "--collection", "boots", "--json").stdout)["instances"] == 3
    assert json.loads(invoke("delete-collection", "shoes", "--home", home, "--json").stdout) == {"deleted": "shoes"}
    assert json.loads(invoke("collections", "--home", home, "--json").stdout)["collections"] == ["boots"]
    refused = runner.invoke(app, ["delete-collection", "default", "--home", home, "--json"])
    assert refused.exit_code == 2 and "home itself" in json.loads(refused.stdout)["error"]["message"]
