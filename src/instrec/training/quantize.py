"""INT8 of the descriptor graph: ONNX Runtime's static quantisation (QDQ, per channel), calibrated on
a user's photos, with the first convolutions and the pooling kept in float.

Where INT8 loses most is the start of the network: the stem's output, at the highest resolution,
feeds the first depthwise convolution, whose few channels each carry much of the image; keeping
those two in float brings the vectors back within the gate (benchmarks/bench_int8.py measures it).
The pooling and normalisation after the last convolution stay in float as well: GeM with p = 3
cubes each activation it pools, so an error there would grow threefold, and keeping them costs
nothing measurable (the benchmark has the row with them quantised).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from instrec.embedding.onnx_runtime import INPUT_NAME

FLOAT_FIRST = 2  # the first convolutions kept in float


def float_nodes(graph: Path, first: int = FLOAT_FIRST) -> list[str]:
    """Names of the nodes :func:`quantize_graph` leaves in float: the first ``first`` convolutions and
    every node after the last one (pooling, normalisation). Nodes are in topological order in ONNX."""
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
    if not convs:
        raise ValueError(f"{graph} has no convolution to quantise")
    return [nodes[i].name for i in convs[:first]] + [node.name for node in nodes[convs[-1] + 1 :]]


def quantize_graph(
    graph: Path,
    out: Path,
    calibration: Iterable[np.ndarray],
    exclude: list[str] | None = None,
) -> Path:
    """Write the INT8 version of the fp32 ``graph`` to ``out`` (atomically), its activation ranges
    measured on ``calibration``: network inputs (n, 3, h, w), any sizes.

    ``exclude``: node names kept in float instead of :func:`float_nodes`' (``[]`` quantises everything).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self, batches: Iterator[np.ndarray]):
            self.batches = batches

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as work:
        prepared = Path(work) / "prepared.onnx"
        # ONNX Runtime's own advice: fold constants and fuse (a SAME padding into its convolution)
        # first, so that the quantised graph has the shape the fp32 one runs in.
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
        tmp = Path(work) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(tmp),
            Batches(iter(calibration)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # Unsigned activations and signed weights: what the x86 VNNI kernels take without saturating.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(prepared) if exclude is None else exclude,
            # Min-max ranges: the histogram methods need every calibration input of one size, and
            # photos keep their aspect ratio.
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMaxIntermediateOutputs": 16},  # ranges merged every 16 batches: bounded memory
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    return out
