"""instrec export on a tiny TorchScript network (random weights): ONNX out, the INT8 gate, the precision setting.

No ``from __future__ import annotations`` here: TorchScript must read the network's annotations.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from instrec.cli import app
from instrec.config import Config
from instrec.embedding import Embedder
from instrec.embedding.onnx_runtime import OnnxEngine
from instrec.embedding.whitening import fit_whitening
from instrec.errors import ConfigError, InstrecError
from instrec.training.export import FP32_GRAPH, INT8_GRAPH, export
from instrec.training.gate import Gate
from instrec.training.model import read_manifest, save_model
from instrec.training.quantize import FLOAT_FIRST, float_nodes
from tests.embedding.conftest import TinyCNN, save_torchscript
from tests.photos import ENROLLED, NEVER_ENROLLED, sample_photo
from tests.training.conftest import INSTANCES


class FourConvs(TinyCNN):
    """TinyCNN and two more convolutions: the first two stay in float, the others are quantised."""

    def __init__(self) -> None:
        super().__init__()
        self.body.extend([nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU()])


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Config:
    torch.manual_seed(0)
    weights = save_torchscript(FourConvs(), tmp_path_factory.mktemp("tiny") / "tiny.pt")
    return Config().with_overrides({"descriptor.backbone": "torchscript", "descriptor.weights": str(weights)})


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory) -> Path:
    """Photos none of which is in the check set (``labelled_dir``)."""
    root = tmp_path_factory.mktemp("calibration")
    for name in ENROLLED[len(INSTANCES) :] + NEVER_ENROLLED:
        photo = sample_photo(name)
        photo.thumbnail((128, 128))
        photo.save(root / f"{name}.png")
    return root


def embedder(config: Config, cache: Path, precision: str = "fp32") -> Embedder:
    descriptor = config.descriptor.model_copy(update={"precision": precision})
    return Embedder(descriptor, config.runtime, config.tuning.descriptor, cache)


def test_export_writes_a_loadable_graph_and_a_manifest(tiny_config, tmp_path):
    result = export(tmp_path / "model", tiny_config, cache_dir=tmp_path / "cache")
    assert result.fp32 == tmp_path / "model" / FP32_GRAPH and result.int8 is None and result.verdict is None
    reference = embedder(tiny_config, tmp_path / "cache")
    inputs = np.random.default_rng(0).standard_normal((2, 3, 64, 96)).astype(np.float32)
    assert np.abs(OnnxEngine(result.fp32)(inputs) - reference.vectors(inputs)).max() < 1e-5
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["method"] == "pretrained" and manifest["base"]["backbone"] == "torchscript"
    assert manifest["export"]["fp32"] == FP32_GRAPH and manifest["export"]["descriptors"] == {"fp32": reference.digest}


def test_the_first_convolutions_and_the_pooling_stay_in_float(tiny_config, tmp_path):
    import onnx

    graph = export(tmp_path / "model", tiny_config, cache_dir=tmp_path / "cache").fp32
    nodes = onnx.load(str(graph)).graph.node
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    after = [node.name for node in nodes[[node.name for node in nodes].index(convs[-1]) + 1 :]]
    assert len(convs) == 4 and float_nodes(graph) == convs[:FLOAT_FIRST] + after
    assert {node.op_type for node in nodes if node.name in after} >= {"Pow", "ReduceMean"}  # GeM
    assert float_nodes(graph, first=0) == after


def test_a_trained_model_directory_exports_with_its_projection(tiny_config, tmp_path):
    model, cache = tmp_path / "model", tmp_path / "cache"
    save_model(model, fit_whitening(np.random.default_rng(0).standard_normal((20, 16)), dims=4), {"method": "whiten"})
    result = export(model, tiny_config, cache_dir=cache)
    trained = Embedder(tiny_config.descriptor.model_copy(update={"whitening": str(model)}), cache_dir=cache)
    assert result.descriptors["fp32"] == trained.digest != embedder(tiny_config, cache).digest
    manifest = read_manifest(model)
    assert manifest["method"] == "whiten" and manifest["export"]["fp32"] == FP32_GRAPH


def test_int8_passes_the_gate_and_the_precision_setting_runs_it(tiny_config, calibration_dir, labelled_dir, tmp_path):
    cache = tmp_path / "cache"
    result = export(tmp_path / "model", tiny_config, calibration_dir, labelled_dir, cache_dir=cache)
    assert result.verdict is not None and result.verdict.passed, result.verdict
    assert result.int8 == tmp_path / "model" / INT8_GRAPH and result.int8.is_file()
    fp32, int8 = embedder(tiny_config, cache), embedder(tiny_config, cache, "int8")
    assert int8.digest != fp32.digest and result.descriptors == {"fp32": fp32.digest, "int8": int8.digest}
    assert int8.int8_graph is not None and int8.int8_graph.read_bytes() == result.int8.read_bytes()
    photos = [sample_photo(name) for name in INSTANCES]
    assert (fp32.embed(photos) * int8.embed(photos)).sum(axis=1).min() > 0.95
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["export"]["int8"] == INT8_GRAPH and manifest["export"]["gate"]["passed"] is True


def test_a_library_enrolled_at_fp32_refuses_int8_vectors(tiny_config, calibration_dir, labelled_dir, tmp_path):
    from instrec.errors import DescriptorMismatchError
    from instrec.recognizer import Recognizer

    cache = tmp_path / "cache"
    export(tmp_path / "model", tiny_config, calibration_dir, labelled_dir, cache_dir=cache)
    fp32 = tiny_config.with_overrides({"home": str(tmp_path / "library"), "rerank.enabled": "false"})
    with Recognizer(fp32, embedder=embedder(fp32, cache)) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="astronaut")
    int8 = fp32.with_overrides({"descriptor.precision": "int8"})
    with (
        pytest.raises(DescriptorMismatchError, match="int8"),
        Recognizer(int8, embedder=embedder(int8, cache, "int8")) as recognizer,
    ):
        recognizer.enroll([sample_photo("coffee")], instance_id="coffee")


def test_a_refused_int8_says_why_and_keeps_fp32(tiny_config, calibration_dir, labelled_dir, tmp_path):
    cache = tmp_path / "cache"
    result = export(tmp_path / "model", tiny_config, calibration_dir, labelled_dir, Gate(min_cosine=1.0), cache)
    assert result.verdict is not None and not result.verdict.passed and result.int8 is None
    assert "mean cosine" in result.verdict.failures[0] and f"{result.verdict.cosine_mean:.4f}" in result.verdict.failures[0]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [FP32_GRAPH, "manifest.json"]
    assert not [p.name for p in cache.iterdir() if "int8" in p.name]  # no candidate left behind either
    assert result.descriptors == {"fp32": embedder(tiny_config, cache).digest}
    with pytest.raises(ConfigError, match="no INT8 graph"):
        embedder(tiny_config, cache, "int8")


def test_the_gate_refuses_to_measure_on_calibration_photos(tiny_config, labelled_dir, tmp_path):
    with pytest.raises(InstrecError, match="also calibration photos"):
        export(tmp_path / "model", tiny_config, labelled_dir, labelled_dir, cache_dir=tmp_path / "cache")


def test_a_gated_int8_graph_runs_without_importing_torch(tiny_config, calibration_dir, labelled_dir, tmp_path):
    cache = tmp_path / "cache"
    export(tmp_path / "model", tiny_config, calibration_dir, labelled_dir, cache_dir=cache)
    descriptor = tiny_config.descriptor.model_copy(update={"precision": "int8"})
    program = f"""
import sys, numpy as np
from pathlib import Path
from instrec.config import DescriptorConfig
from instrec.embedding import Embedder
embedder = Embedder(DescriptorConfig(**{descriptor.model_dump()!r}), cache_dir=Path({str(cache)!r}))
embedder.vectors(np.zeros((1, 3, 64, 64), np.float32))
print(embedder.digest, [name for name in ("torch", "onnx") if name in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [embedder(tiny_config, cache, "int8").digest, "[]"]


def test_int8_runs_only_on_onnx_runtime(tiny_config):
    config = tiny_config.with_overrides({"descriptor.precision": "int8", "runtime.engine": "torch"})
    with pytest.raises(ConfigError, match="runtime.engine=onnx"):
        Embedder(config.descriptor, config.runtime, config.tuning.descriptor)


def test_the_command_exports_and_reports_the_gate(tiny_config, calibration_dir, labelled_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    sets = ["--set", f"descriptor.backbone={tiny_config.descriptor.backbone}"]
    sets += ["--set", f"descriptor.weights={tiny_config.descriptor.weights}"]
    args = ["export", str(tmp_path / "m"), "--int8", "--calibration", str(calibration_dir), "--check", str(labelled_dir)]
    result = CliRunner().invoke(app, [*args, *sets, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["gate"]["passed"] is True and printed["int8"] == str(tmp_path / "m" / INT8_GRAPH)
    assert set(printed["descriptors"]) == {"fp32", "int8"}


def test_the_command_wants_calibration_and_check_photos_with_int8(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--int8"])
    assert result.exit_code == 2 and "--calibration" in result.output and not (tmp_path / "m").exists()
