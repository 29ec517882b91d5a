"""Run the descriptor with ONNX Runtime: several times faster than torch eager on CPU, same vectors.

The torch module is exported once per descriptor digest and cached on disk; the file is written
under a temporary name and renamed, so a crash or a concurrent process never leaves a half file.
torch and onnx are imported only to export: running a cached graph needs neither.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import onnxruntime as ort

from instrec.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

OPSET = 17
EXPORT_VERSION = 3  # bump when the export code changes: old cached graphs are then not reused
INPUT_NAME = "images"
OUTPUT_NAME = "vectors"
CUDA = "CUDAExecutionProvider"

log = logging.getLogger(__name__)


def cache_path(cache_dir: Path, digest: str) -> Path:
    """Where the exported graph of descriptor ``digest`` is cached (export code and torch versions in the name)."""
    return cache_dir / f"{digest}-{OPSET}-{EXPORT_VERSION}-torch{metadata.version('torch').split('+')[0]}.onnx"


def int8_path(cache_dir: Path, digest: str) -> Path:
    """Where ``instrec export --int8`` puts the gated INT8 graph of the fp32 descriptor ``digest``.

    Not a cache: it is made from the user's calibration photos, so nothing here can rebuild it.
    """
    return cache_dir / f"{digest}-int8.onnx"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/instrec``, else ``~/.cache/instrec``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "instrec"


def export_onnx(module: nn.Module, path: Path) -> None:
    """Export ``module`` (images -> vectors or feature maps) with dynamic batch and sides, atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        # Trace, then export the traced graph with the legacy exporter: unlike exporting the module
        # directly this also copes with user TorchScript backbones, and unlike the dynamo exporter
        # it needs no onnxscript. Its deprecation and tracer warnings are expected here.
        example = torch.zeros(1, 3, 64, 96)  # sides: multiples of 32, as Lite needs
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            spatial_output = module.eval()(example).dim() == 4  # a feature map: its h and w vary too
            traced = torch.jit.trace(module, example, check_trace=False)
            torch.onnx.export(
                traced,
                (example,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "n", 2: "h", 3: "w"},
                    OUTPUT_NAME: {0: "n", 2: "fh", 3: "fw"} if spatial_output else {0: "n"},
                },
            )
        _let_pads_fuse_into_convs(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _let_pads_fuse_into_convs(path: str) -> None:
    """Drop the empty optional inputs the exporter gives ``Pad`` nodes.

    ONNX Runtime folds a constant zero ``Pad`` into the ``Conv`` after it, but only when every input
    of the ``Pad`` is a constant, and an empty name does not count as one.
    """
    import onnx

    model = onnx.load(path)
    for node in model.graph.node:
        if node.op_type == "Pad":
            while node.input and not node.input[-1]:
                node.input.pop()
    onnx.save(model, path)


def execution_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime's providers for ``runtime.device``: CUDA first where this build of ONNX Runtime has
    it (onnxruntime-gpu, which runs on the CPU by itself when no GPU answers), the CPU always."""
    has_cuda = CUDA in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "runtime.device=cuda, but this ONNX Runtime has no CUDA execution provider: "
            "install onnxruntime-gpu in place of onnxruntime"
        )
    return ([CUDA] if has_cuda and device != "cpu" else []) + ["CPUExecutionProvider"]


class OnnxEngine:
    """Callable (N, 3, H, W) float32 -> the graph's output, float32, on the providers ``device`` picks."""

    def __init__(self, path: Path, threads: int = 0, device: str = "auto"):
        options = ort.SessionOptions()
        # ALL adds the blocked (NCHWc) conv layout on x86: the largest single gain on CPU.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (one per core)
        # Idle pool threads must sleep, not spin: spinning ones take the cores that SIFT, BLAS and
        # FAISS need right after the network (2-core box, default threads: recognition 249 -> 158
        # ms wall, benchmarks/bench_recognize_latency.py --threads 0).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=execution_providers(device))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def cached_engine(
    module: Callable[[], nn.Module], cache_dir: Path, digest: str, threads: int = 0, device: str = "auto"
) -> OnnxEngine:
    """Engine from a cache file named by digest, opset, export code and torch versions (exported if absent,
    from the module ``module()`` builds)."""
    execution_providers(device)  # a device to fix is said first: not taken for an unreadable cache, nothing exported
    path = cache_path(cache_dir, digest)
    if path.exists():
        try:
            return OnnxEngine(path, threads, device)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file is rebuilt
            log.warning("rebuilding unreadable ONNX cache %s: %s", path, exc)
    export_onnx(module(), path)
    return OnnxEngine(path, threads, device)
