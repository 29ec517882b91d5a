"""INT8 of the descriptor graph: ONNX Runtime's static quantisation (QDQ, per channel), calibrated on
a user's photos, with the pooling and the last layers kept in float.

GeM with p = 3 cubes every activation of the last feature map before averaging, so an error there
grows threefold in the pooled vector; quantising that map (and the L2 normalisation after it) is
what ruins the vectors of a naive whole-graph quantisation. The convolutions before it tolerate
INT8 well, and they are where the time goes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from instrec.embedding.onnx_runtime import INPUT_NAME

FLOAT_CONVS = 1  # the last convolutions kept in float (with everything after them: pooling, normalisation)
CALIBRATION = "minmax"  # how activation ranges are set: "minmax", "percentile" or "entropy"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def float_tail(graph: Path, float_convs: int) -> list[str]:
    """Names of the nodes from the ``float_convs``-th last convolution on (all nodes after the last
    one when 0): what :func:`quantize_graph` leaves in float. Nodes are in topological order in ONNX."""
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
    if not convs:
        raise ValueError(f"{graph} has no convolution to quantise")
    start = convs[-1] + 1 if float_convs == 0 else convs[-min(float_convs, len(convs))]
    return [node.name for node in nodes[start:]]


def quantize_graph(
    graph: Path,
    out: Path,
    calibration: Iterable[np.ndarray],
    float_convs: int = FLOAT_CONVS,
    method: str = CALIBRATION,
    exclude: list[str] | None = None,
) -> Path:
    """Write the INT8 version of the fp32 ``graph`` to ``out`` (atomically), its activation ranges
    measured on ``calibration``: network inputs (n, 3, h, w), any sizes.

    ``exclude``: node names kept in float instead of :func:`float_tail`'s (``[]`` quantises everything).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}: choose one of {', '.join(CALIBRATION_METHODS)}")

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
            nodes_to_exclude=float_tail(prepared, float_convs) if exclude is None else exclude,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
            extra_options={"CalibMaxIntermediateOutputs": 16},  # ranges merged every 16 batches: bounded memory
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    return out
