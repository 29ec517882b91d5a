from __future__ import annotations

import logging
import os
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
    assert [p.name for p in cache_dir.iterdir()] == [path.name]  # no temporary files left


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
