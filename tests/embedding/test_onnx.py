from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder, onnx_runtime
from instrec.embedding.onnx_runtime import OnnxEngine, cache_path, export_onnx


def shapes_zoo(images: dict[str, Image.Image]) -> list[Image.Image]:
    """Square, landscape, portrait, a very thin strip, a tiny image, and two of one size (batched)."""
    astronaut, coffee = images["astronaut"], images["coffee"]
    return [
        astronaut,
        coffee,
        ImageEnhance.Brightness(coffee).enhance(1.2),
        astronaut.crop((100, 0, 251, 512)),
        astronaut.crop((0, 200, 512, 231)),
        images["camera"].resize((23, 17)),
    ]


def test_onnx_matches_torch_on_any_aspect_ratio(
    lite0_onnx: Embedder, lite0_torch: Embedder, images: dict[str, Image.Image]
) -> None:
    assert isinstance(lite0_onnx._engine, OnnxEngine)
    zoo = shapes_zoo(images)
    fast, reference = lite0_onnx.embed(zoo), lite0_torch.embed(zoo)
    assert lite0_onnx.digest == lite0_torch.digest
    assert np.abs(fast - reference).max() < 1e-4
    assert (fast * reference).sum(axis=1).min() > 0.9999


def test_padding_is_folded_into_the_convolutions(lite0_onnx: Embedder, cache_dir: Path, tmp_path: Path) -> None:
    """No Pad (nor the shape arithmetic of per-size padding) left once ONNX Runtime optimised the graph."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    exported = cache_path(cache_dir, lite0_onnx.digest)
    ort.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("Conv") + ops.count("FusedConv") == 49
    assert "Pad" not in ops and ops.count("Shape") <= 1  # one Shape is L2 normalisation's


def test_cached_export_is_reused(lite0_onnx: Embedder, cache_dir: Path) -> None:
    path = cache_path(cache_dir, lite0_onnx.digest)
    mtime = path.stat().st_mtime_ns
    with mock.patch.object(onnx_runtime, "export_onnx") as export:
        again = Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx", threads=1), cache_dir=cache_dir)
    export.assert_not_called()
    assert isinstance(again._engine, OnnxEngine) and path.stat().st_mtime_ns == mtime
    assert not [p.name for p in cache_dir.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


def test_a_cached_graph_runs_without_importing_torch(lite0_onnx: Embedder, cache_dir: Path, tmp_path: Path) -> None:
    """A new process embeds with the cached graph alone (importing torch and onnx takes seconds)."""
    query = tmp_path / "query.npy"
    np.save(query, np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32))
    program = f"""
import sys, numpy as np
from pathlib import Path
from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder
embedder = Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx", threads=1), cache_dir=Path({str(cache_dir)!r}))
np.save({str(tmp_path / "vector.npy")!r}, embedder.vectors(np.load({str(query)!r})))
print(embedder.digest, [name for name in ("torch", "onnx") if name in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [lite0_onnx.digest, "[]"]
    reference = lite0_onnx.torch_model()(torch.from_numpy(np.load(query))).detach().numpy()
    assert np.abs(np.load(tmp_path / "vector.npy") - reference).max() < 1e-4


def test_failed_export_falls_back_to_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, images: dict[str, Image.Image], lite0_torch: Embedder
) -> None:
    with mock.patch.object(onnx_runtime, "export_onnx", side_effect=RuntimeError("no luck")):
        with caplog.at_level(logging.WARNING):
            embedder = Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx"), cache_dir=tmp_path)
    assert "ONNX export failed" in caplog.text and "no luck" in caplog.text
    image = [images["chelsea"]]
    assert np.allclose(embedder.embed(image), lite0_torch.embed(image), atol=1e-6)


def test_a_crash_mid_export_leaves_no_file(tmp_path: Path) -> None:
    def half_write(module: object, args: object, f: str, **kwargs: object) -> None:
        Path(f).write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    target = tmp_path / "model.onnx"
    with mock.patch.object(torch.onnx, "export", half_write), pytest.raises(KeyboardInterrupt):
        export_onnx(torch.nn.Conv2d(3, 4, 1), target)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_cache_file_is_rebuilt(
    tmp_path: Path, torchscript_file: Path, images: dict[str, Image.Image], caplog: pytest.LogCaptureFixture
) -> None:
    descriptor = DescriptorConfig(backbone="torchscript", weights=str(torchscript_file))
    reference = Embedder(descriptor, RuntimeConfig(engine="torch"))
    cache_path(tmp_path, reference.digest).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        embedder = Embedder(descriptor, RuntimeConfig(engine="onnx"), cache_dir=tmp_path)
    assert "rebuilding" in caplog.text and isinstance(embedder._engine, OnnxEngine)
    zoo = shapes_zoo(images)
    assert np.abs(embedder.embed(zoo) - reference.embed(zoo)).max() < 1e-5
    assert os.stat(cache_path(tmp_path, reference.digest)).st_size > 100


def test_a_changed_weights_file_is_not_taken_for_the_remembered_one(
    tmp_path: Path, torchscript_file: Path, images: dict[str, Image.Image]
) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(torchscript_file.read_bytes())
    descriptor = DescriptorConfig(backbone="torchscript", weights=str(weights))
    first = Embedder(descriptor, RuntimeConfig(engine="onnx"), cache_dir=tmp_path / "cache")
    module = torch.jit.load(str(weights))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(0.5)
    torch.jit.save(module, str(weights))
    stat = weights.stat()  # a later save: two saves this close can share a timestamp tick
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = Embedder(descriptor, RuntimeConfig(engine="onnx"), cache_dir=tmp_path / "cache")
    assert second.digest != first.digest
    zoo = shapes_zoo(images)
    assert np.abs(second.embed(zoo) - Embedder(descriptor, RuntimeConfig(engine="torch")).embed(zoo)).max() < 1e-5


def test_the_device_setting_picks_cuda_only_where_onnx_runtime_has_it(monkeypatch):
    import onnxruntime as ort

    from instrec.embedding.onnx_runtime import execution_providers
    from instrec.errors import ConfigError

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert execution_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert execution_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        execution_providers("cuda")


def test_an_embedder_asked_for_cuda_without_it_says_so_instead_of_falling_back_to_torch(tmp_path):
    from instrec.errors import ConfigError

    with pytest.raises(ConfigError, match="runtime.device=cuda"):
        Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx", device="cuda"), cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.onnx")), "refused before exporting a graph"


def test_a_device_to_fix_leaves_a_good_cached_graph_alone(tmp_path, caplog):
    from instrec.errors import ConfigError

    Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx", device="cpu"), cache_dir=tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    written = graph.stat().st_mtime_ns
    with pytest.raises(ConfigError, match="runtime.device=cuda"):
        Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx", device="cuda"), cache_dir=tmp_path)
    assert graph.stat().st_mtime_ns == written and "rebuilding" not in caplog.text
