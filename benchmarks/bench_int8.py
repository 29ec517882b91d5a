"""INT8 of the descriptor network: ONNX Runtime static quantisation (what `instrec export --int8`
ships) and OpenVINO + NNCF post-training quantisation, against fp32 ONNX Runtime.

ukbench-dev and coil100, each split by instance: a sample of --calibration photos (drawn by the
seed) from the first halves of both calibrates; the second halves measure, photos the calibration
never saw: each photo's cosine to its fp32 vector, 1-shot top-1 (each instance's first photo
enrolled, its others queried) and AUROC with a fifth of the instances never enrolled, on the global
descriptor alone (as benchmarks/bench_train.py measures), and the gate's verdict
(instrec.training.gate) on each set. Speed: ms/image at batch 1 and at --batch on an ukbench photo's
input (224x160), every engine timed in every round, in a rotating order, on the shared cores; the
ratio to fp32 ONNX Runtime is taken within each round, then the median over rounds.

The OpenVINO rows need `pip install openvino nncf` (not dependencies of instrec: measured here only).

    python benchmarks/bench_int8.py [--seeds 0 1 2] [--calibration 300] [--rounds 30] [--batch 8]
        [--threads 0] [--results]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from importlib import metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from bench_train import open_set_auroc
from instrec.config import Config, usable_cores
from instrec.embedding import Embedder
from instrec.embedding.onnx_runtime import OnnxEngine, cache_path, default_cache_dir
from instrec.images import load_images
from instrec.training.data import LabelledFolder, read_labelled_folder
from instrec.training.features import FeatureSet
from instrec.training.gate import MAX_TOP1_DROP, MIN_COSINE, MIN_LOW_COSINE, Gate
from instrec.training.metrics import one_shot
from instrec.training.quantize import FLOAT_FIRST, float_nodes, quantize_graph
from results import write_section

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = ("ukbench-dev", "coil100")
FP32 = "ONNX Runtime fp32"
Engine = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CheckSet:
    name: str
    photos: list[Image.Image]
    labels: np.ndarray
    order: np.ndarray  # position within its instance: the first is the 1 shot


def split(name: str) -> tuple[LabelledFolder, LabelledFolder]:
    """(first half of the instances, second half), by sorted instance name."""
    folder = read_labelled_folder(DATA / name)
    first = set(folder.instances[: len(folder.instances) // 2])
    return folder.subset(lambda i: i in first), folder.subset(lambda i: i not in first)


def check_set(name: str, folder: LabelledFolder) -> CheckSet:
    photos, _ = load_images([path for paths in folder.files for path in paths])
    labels = np.repeat(np.arange(len(folder.files)), [len(paths) for paths in folder.files])
    order = np.concatenate([np.arange(len(paths)) for paths in folder.files])
    return CheckSet(name, [photo.pixels for photo in photos], labels, order)


def calibration_inputs(embedder: Embedder, pool: list[Path], count: int, seed: int) -> list[np.ndarray]:
    chosen = np.random.default_rng(seed).choice(len(pool), min(count, len(pool)), replace=False)
    photos, _ = load_images([pool[i] for i in sorted(chosen)])
    return [batch for _, batch in embedder.input_batches([photo.pixels for photo in photos], 8)]


def openvino_engines(graph: Path, inputs: list[np.ndarray], threads: int) -> dict[str, Engine]:
    """OpenVINO fp32 and bf16, and NNCF INT8 (its float layers fp32) ignoring what the shipped ORT graph
    keeps in float: the first convolutions and everything after the last one (left to itself NNCF
    quantises the normalisation, and the vectors lose their unit length)."""
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        print("OpenVINO rows skipped: pip install openvino nncf", file=sys.stderr)
        return {}
    import nncf
    import openvino as ov

    core = ov.Core()
    settings = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}

    def engine(model: Any, precision: str | None = "f32") -> Engine:
        # OpenVINO runs float layers in bf16 where the CPU has it (AMX here) unless told f32.
        hint = {} if precision is None else {"INFERENCE_PRECISION_HINT": precision}
        request = core.compile_model(model, "CPU", {**settings, **hint}).create_infer_request()
        return lambda x: np.array(request.infer({0: x})[0])

    model = core.read_model(str(graph))
    ops = model.get_ordered_ops()
    convs = [i for i, op in enumerate(ops) if op.get_type_name() in ("Convolution", "GroupConvolution")]
    tail = [op for op in ops[convs[-1] + 1 :] if op.get_type_name() not in ("Constant", "Result")]
    names = [ops[i].get_friendly_name() for i in convs[:FLOAT_FIRST]] + [op.get_friendly_name() for op in tail]
    samples = [batch[i : i + 1] for batch in inputs for i in range(len(batch))]
    ignored = nncf.IgnoredScope(names=names, validate=False)  # not every name is one NNCF would quantise
    int8 = nncf.quantize(core.read_model(str(graph)), nncf.Dataset(samples), subset_size=len(samples), ignored_scope=ignored)
    return {
        "OpenVINO fp32": engine(model),
        "OpenVINO, its default (bf16 layers)": engine(model, None),
        "OpenVINO INT8 (NNCF)": engine(int8),
    }


def accuracy(embedder: Embedder, engines: dict[str, Engine], checks: list[CheckSet]) -> dict[str, dict[str, dict[str, Any]]]:
    """engine -> check set -> figures, against fp32 ONNX Runtime's vectors of the same photos."""
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in engines}
    for check in checks:
        reference = embedder.embed_with(engines[FP32], check.photos)
        test = FeatureSet(reference, check.labels, np.arange(len(check.labels)), np.zeros(len(check.labels), int))
        for name, engine in engines.items():
            vectors = reference if name == FP32 else embedder.embed_with(engine, check.photos)
            cosine = (vectors * reference).sum(axis=1)
            verdict = Gate().judge(reference, vectors, check.labels, check.order)
            out[name][check.name] = {
                "cos_mean": float(cosine.mean()),
                "cos_low": verdict.cosine_low,
                "cos_min": float(cosine.min()),
                "top1": one_shot(vectors, test.labels, test.images).top1,
                "auroc": open_set_auroc(vectors, test),
                "gate": "passed" if verdict.passed else "refused: " + "; ".join(verdict.failures),
            }
    return out


def speed(engines: dict[str, Engine], one: np.ndarray, batch: np.ndarray, rounds: int) -> dict[str, dict[str, float]]:
    """engine -> median ms/image at batch 1 and at len(batch), and the median of per-round ratios to fp32."""
    names = list(engines)
    times: dict[str, dict[str, list[float]]] = {name: {"1": [], "n": []} for name in names}
    for engine in engines.values():  # warm-up: first runs allocate and pick kernels
        engine(one), engine(batch)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for key, x, calls in (("1", one, 10), ("n", batch, 3)):
                spent = []
                for _ in range(calls):
                    started = time.perf_counter()
                    engines[name](x)
                    spent.append(time.perf_counter() - started)
                times[name][key].append(1000 * float(np.median(spent)) / len(x))
    out = {}
    for name in names:
        row = {}
        for key in ("1", "n"):
            row[f"ms_{key}"] = float(np.median(times[name][key]))
            row[f"x_{key}"] = float(np.median(np.array(times[FP32][key]) / np.array(times[name][key])))
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--calibration", type=int, default=300, help="calibration photos per seed")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = parser.parse_args()
    threads = args.threads or usable_cores()  # the same count for every engine, ONNX Runtime's default may differ
    config = Config.load().with_overrides({"runtime.threads": str(threads)})
    embedder = Embedder(config.descriptor, config.runtime, config.tuning.descriptor)
    graph = cache_path(default_cache_dir(), embedder.digest)
    halves = {name: split(name) for name in DATASETS}
    pool = [path for first, _ in halves.values() for paths in first.files for path in paths]
    checks = [check_set(name, second) for name, (_, second) in halves.items()]
    one = embedder.preprocess(checks[0].photos[0])[None]
    batch = np.repeat(one, args.batch, axis=0)
    figures: dict[int, dict[str, dict[str, dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            inputs = calibration_inputs(embedder, pool, args.calibration, seed)
            variants = {
                "ONNX Runtime INT8 (instrec export)": None,
                "ONNX Runtime INT8, pooling quantised too": float_nodes(graph)[:FLOAT_FIRST],
                "ONNX Runtime INT8, whole graph": [],
            }
            engines: dict[str, Engine] = {FP32: OnnxEngine(graph, threads)}
            for i, (name, exclude) in enumerate(variants.items()):
                quantized = quantize_graph(graph, Path(work) / f"int8-{seed}-{i}.onnx", iter(inputs), exclude)
                engines[name] = OnnxEngine(quantized, threads)
            engines |= openvino_engines(graph, inputs, threads)
            # Uncalibrated engines give the same vectors whatever the seed: measured once.
            measured = {k: v for k, v in engines.items() if seed == args.seeds[0] or k == FP32 or "INT8" in k}
            figures[seed] = accuracy(embedder, measured, checks)
            print(seed, figures[seed], flush=True)
            if seed == args.seeds[0]:
                timed = speed(engines, one, batch, args.rounds)
                print(timed, flush=True)
    lines = report(figures, timed, args, one.shape)
    print("\n".join(lines))
    if args.results:
        command = "python benchmarks/bench_int8.py " + " ".join(sys.argv[1:]).replace(" --results", "").replace("--results", "")
        write_section("INT8 of the descriptor (instrec export --int8)", command.strip(), lines)


def report(
    figures: dict[int, dict[str, dict[str, dict[str, Any]]]],
    timed: dict[str, dict[str, float]],
    args: argparse.Namespace,
    shape: tuple[int, ...],
) -> list[str]:
    seeds = list(figures)
    versions = ", ".join(f"{name} {_version(name)}" for name in ("onnxruntime", "openvino", "nncf"))
    lines = [
        f"{versions}; CPU: {_cpu()}.",
        "",
        f"Speed: input {shape[3]}x{shape[2]} (an ukbench photo's), {args.threads or usable_cores()} threads, "
        f"{args.rounds} interleaved rounds; x fp32 = the median over rounds of fp32 ONNX Runtime's time / this engine's "
        f"(same round). INT8 graphs of seed {seeds[0]}.",
        "",
        f"| engine | ms/image, batch 1 | x fp32 | ms/image, batch {args.batch} | x fp32 |",
        "|---|---|---|---|---|",
    ]
    for name, row in timed.items():
        lines.append(f"| {name} | {row['ms_1']:.2f} | {row['x_1']:.2f} | {row['ms_n']:.2f} | {row['x_n']:.2f} |")
    lines += [
        "",
        f"Accuracy: calibrated on {args.calibration} photos drawn by the seed from the first halves (by instance) of"
        " ukbench-dev and coil100; measured on the second halves (63 ukbench objects, 50 COIL objects), global"
        " descriptor only, 1 shot; AUROC with 1/5 of the instances never enrolled."
        f" Gate: mean cosine >= {MIN_COSINE}, cosine p1 (the"
        f" 1st percentile of per-photo cosines, gate.low_quantile) >= {MIN_LOW_COSINE} and top-1 at most"
        f" {MAX_TOP1_DROP * 100:.0f} point below fp32's, on each set.",
        "",
        "| engine | seed | set | cosine mean | cosine p1 | cosine min | top-1 | AUROC | gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in figures[seeds[0]]:
        calibrated = "INT8" in name
        for seed in seeds if calibrated else seeds[:1]:
            for dataset, row in figures[seed][name].items():
                seed_cell = seed if calibrated else "-"
                lines.append(
                    f"| {name} | {seed_cell} | {dataset} | {row['cos_mean']:.4f} | {row['cos_low']:.4f} | {row['cos_min']:.4f} "
                    f"| {row['top1']:.3f} "
                    f"| {row['auroc']:.3f} | {row['gate']} |"
                )
    return [*lines, ""]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    names = [
        line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
    ]
    return names[0] if names else "unknown"


if __name__ == "__main__":
    main()
