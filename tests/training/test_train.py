import json

from typer.testing import CliRunner

from instrec.cli import app
from instrec.config import Config
from instrec.embedding import Embedder
from instrec.training.fit import TrainSettings
from instrec.training.train import train
from tests.training.conftest import INSTANCES

SETTINGS = TrainSettings(method="whiten", val_fraction=0.34, dims=16, views=1)


def test_the_model_directory_has_its_manifest(labelled_dir, tmp_path):
    result = train(labelled_dir, tmp_path / "model", SETTINGS)
    manifest = json.loads((result.model / "manifest.json").read_text())
    assert manifest["method"] == "whiten" and manifest["base"]["backbone"] == "efficientnet_lite0"
    assert manifest["training_data"]["instances"] == len(INSTANCES) and len(manifest["training_data"]["digest"]) == 16
    assert manifest["settings"] == SETTINGS.to_dict() and manifest["dims"] == 16 and manifest["created"]
    assert manifest["validation"] == result.metrics and result.metrics["validation_instances"] == 2


def test_loading_the_model_changes_the_descriptor(labelled_dir, tmp_path):
    model = train(labelled_dir, tmp_path / "model", SETTINGS).model
    config = Config()
    plain = Embedder(config.descriptor, config.runtime)
    trained = Embedder(config.descriptor.model_copy(update={"whitening": str(model)}), config.runtime)
    assert trained.dim == 16 and trained.digest != plain.digest


def test_the_command_refuses_an_unknown_method(labelled_dir, tmp_path):
    result = CliRunner().invoke(app, ["train", str(labelled_dir), "--out", str(tmp_path / "m"), "--method", "distil"])
    assert result.exit_code != 0 and "unknown --method" in result.output
    assert not (tmp_path / "m").exists()


def test_the_command_trains_a_head_and_prints_its_figures(labelled_dir, tmp_path):
    args = ["train", str(labelled_dir), "--out", str(tmp_path / "m"), "--method", "head", "--epochs", "2"]
    result = CliRunner().invoke(app, [*args, "--dims", "16", "--views", "1", "--val-fraction", "0.34", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["model"] == str(tmp_path / "m") and printed["epochs_run"] <= 2 and "validation_head" in printed
