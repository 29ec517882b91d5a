"""``export``: the descriptor's network as ONNX in a model directory and, on request, its INT8 graph,
kept only where it passes the quality gate (:mod:`instrec.training.gate`).

The graph is the network the embedder runs (images -> pooled unit vectors); a trained model's
projection stays beside it in ``projection.npz``, applied after it. A gated INT8 graph is also put
where ``descriptor.precision=int8`` looks for it (:func:`instrec.embedding.onnx_runtime.int8_path`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.embedding.onnx_runtime import OnnxEngine, cache_path, default_cache_dir, int8_path
from instrec.embedding.spec import MODEL_BACKBONE
from instrec.embedding.whitening import MODEL_PROJECTION
from instrec.errors import InstrecError
from instrec.images import iter_image_files, load_images
from instrec.training.data import LabelledFolder, read_labelled_folder
from instrec.training.gate import Gate, Verdict
from instrec.training.model import read_manifest, record_export
from instrec.training.quantize import quantize_graph

FP32_GRAPH = "descriptor.onnx"
INT8_GRAPH = "descriptor-int8.onnx"
CALIBRATION_IMAGES = 300  # at most this many calibration photos, spread over the folder
CALIBRATION_BATCH = 8

StageReport = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ExportResult:
    model: Path
    fp32: Path
    int8: Path | None  # None: not asked for, or refused by the gate
    verdict: Verdict | None  # None: not asked for
    descriptors: dict[str, str]  # precision -> the descriptor id its vectors carry

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "fp32": str(self.fp32),
            "int8": None if self.int8 is None else str(self.int8),
            "gate": None if self.verdict is None else self.verdict.to_dict(),
            "descriptors": self.descriptors,
        }


def export(
    model: str | Path,
    config: Config | None = None,
    calibration: str | Path | None = None,
    check: str | Path | None = None,
    gate: Gate = Gate(),
    cache_dir: Path | None = None,
    progress: StageReport | None = None,
) -> ExportResult:
    """Write the descriptor of ``config`` to ``model`` (a directory) as ONNX; a directory from
    ``instrec train`` brings its projection (a fine-tuned one its backbone too). With ``calibration``
    (photos like the gallery's) also
    an INT8 graph, gated on ``check``: a labelled folder (one sub-folder per instance) of other photos.
    """
    config = config or Config()
    model, cache_dir = Path(model), cache_dir or default_cache_dir()
    trained = _trained(model)
    descriptor = config.descriptor.model_copy(update={"precision": "fp32", **trained})
    runtime = config.runtime.model_copy(update={"engine": "onnx"})
    embedder = Embedder(descriptor, runtime, config.tuning.descriptor, cache_dir)
    graph = cache_path(cache_dir, embedder.digest)
    if not graph.is_file():
        raise InstrecError(f"{descriptor.backbone} could not be exported to ONNX; the logged warning says why")
    model.mkdir(parents=True, exist_ok=True)
    fp32 = _copy(graph, model / FP32_GRAPH)
    descriptors = {"fp32": embedder.digest}
    verdict, int8 = None, None
    if calibration is not None:
        if check is None:
            raise InstrecError("INT8 needs a labelled check set (--check) besides the calibration photos")
        checked = read_labelled_folder(check)
        candidate = graph.with_name(f".{graph.stem}-{os.getpid()}.int8.onnx")
        try:
            verdict = _quantized(embedder, graph, candidate, Path(calibration), checked, gate, config, progress)
            if verdict.passed:
                int8 = _copy(candidate, model / INT8_GRAPH)
                _copy(candidate, int8_path(cache_dir, embedder.digest))
                at_int8 = descriptor.model_copy(update={"precision": "int8"})
                descriptors["int8"] = Embedder(at_int8, runtime, config.tuning.descriptor, cache_dir).digest
            else:
                (model / INT8_GRAPH).unlink(missing_ok=True)  # the directory says what this export decided
        finally:
            candidate.unlink(missing_ok=True)
    record = {
        "fp32": FP32_GRAPH,
        "int8": None if int8 is None else INT8_GRAPH,
        "descriptors": descriptors,
        "gate": None if verdict is None else verdict.to_dict(),
    }
    record_export(model, {"backbone": descriptor.backbone, "descriptor_digest": embedder.digest}, record)
    return ExportResult(model, fp32, int8, verdict, descriptors)


def _quantized(
    embedder: Embedder,
    graph: Path,
    candidate: Path,
    calibration: Path,
    check: LabelledFolder,
    gate: Gate,
    config: Config,
    progress: StageReport | None,
) -> Verdict:
    """Quantise ``graph`` into ``candidate``, calibrated on ``calibration``; the gate's verdict on ``check``."""
    files = iter_image_files(calibration, recursive=True) if calibration.is_dir() else []
    if not files:
        raise InstrecError(f"no calibration photos under {calibration}")
    files = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, min(len(files), CALIBRATION_IMAGES)).astype(int))]
    check_files = [path for paths in check.files for path in paths]
    shared = {_content(p) for p in files} & {_content(p) for p in check_files}
    if shared:
        raise InstrecError(
            f"{len(shared)} check photos are also calibration photos: the gate must measure photos the calibration never saw"
        )
    photos, _ = load_images(files, config.limits, skip_bad=True)  # a bad calibration photo loses nothing
    if progress is not None:
        progress("calibrate", 0, 1)
    inputs = (batch for _, batch in embedder.input_batches([photo.pixels for photo in photos], CALIBRATION_BATCH))
    quantize_graph(graph, candidate, inputs)
    if progress is not None:
        progress("calibrate", 1, 1)
    checked, _ = load_images(check_files, config.limits)
    pixels = [photo.pixels for photo in checked]
    labels = np.repeat(np.arange(len(check.files)), [len(paths) for paths in check.files])
    order = np.concatenate([np.arange(len(paths)) for paths in check.files])
    int8 = embedder.embed_with(OnnxEngine(candidate, config.runtime.threads), pixels)
    return gate.judge(embedder.embed(pixels), int8, labels, order)


def _trained(model: Path) -> dict[str, str]:
    """The descriptor settings a model directory of ``instrec train`` stands for: its projection, and its
    fine-tuned backbone (of the base it names) where it has one."""
    trained = {"whitening": str(model)} if (model / MODEL_PROJECTION).is_file() else {}
    if (model / MODEL_BACKBONE).is_file():
        trained |= {"backbone": read_manifest(model)["base"]["backbone"], "weights": str(model)}
    return trained


def _content(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _copy(source: Path, target: Path) -> Path:
    """Copy under a temporary name, then rename: a reader never sees half a graph."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
