import json

import pytest
from typer.testing import CliRunner

from instrec.cli import app
from instrec.errors import InstrecError
from instrec.evaluation import evaluate, load_split
from tests.conftest import shared_data
from tests.photos import sample_photo


def test_split_is_deterministic_and_holds_out_unknowns(dataset):
    a = load_split(dataset, shots=1, unknown_fraction=0.25, seed=3)
    b = load_split(dataset, shots=1, unknown_fraction=0.25, seed=3)
    assert a == b
    assert len(a.gallery) == 6 and a.unknown_queries == 2 * 4 and a.known_queries == 6 * 3
    assert all(files[0].name == "0-original.jpg" for _, files in a.gallery)
    with pytest.raises(InstrecError):
        load_split(dataset, shots=0)


def test_gallery_queries_layout(tmp_path):
    for part, name in [("gallery", "a"), ("gallery", "b"), ("queries", "a"), ("queries", "_unknown")]:
        (tmp_path / part / name).mkdir(parents=True)
        sample_photo("coffee").save(tmp_path / part / name / "x.jpg")
    split = load_split(tmp_path)
    assert split.layout == "gallery/queries" and split.unknown_queries == 1 and split.known_queries == 1


@pytest.mark.slow
def test_evaluate_end_to_end(dataset, embedder):
    result = evaluate(dataset, shots=1, unknown_fraction=0.25, seed=0, embedder=embedder)
    assert result["top1"] >= 0.8 and result["top5"] >= result["top1"]
    assert 0.0 <= result["auroc"] <= 1.0 and result["ms_per_query"] > 0
    assert result["instances"] == 6 and result["threshold"] is not None


@pytest.mark.slow
def test_cli_evaluate_prints_one_json_object(dataset):
    run = CliRunner().invoke(app, ["evaluate", str(dataset), "--shots", "1", "--json"])
    assert run.exit_code == 0, run.output
    payload = json.loads(run.stdout)
    for key in ("top1", "top5", "mrr", "map", "auroc", "ms_per_query"):
        assert key in payload
    assert payload["auroc"] is None  # no unknown queries asked for


@pytest.mark.data
@pytest.mark.slow
def test_ukbench_three_shots_reaches_the_published_baseline(embedder):
    result = evaluate(shared_data("ukbench-dev"), shots=3, embedder=embedder)
    assert result["top1"] >= 0.72
