"""What a GPU changes: the descriptor's ms per photo, enrolment images/s and fine-tuning images/s,
on the CPU and on CUDA in the same run. CUDA rows appear where torch (a CUDA build) or ONNX Runtime
(onnxruntime-gpu) sees a GPU; on a machine without one the script prints the CPU rows alone.

    python benchmarks/bench_gpu.py [--data DIR] [--images 400] [--epoch-images 256]
        [--machine "2-core development machine"] [--results]

``--data``: a folder of instance folders of photos (default ../shared/data/ukbench-dev). Enrolment
enrols each photo as its own instance into a fresh library; fine-tuning (``partial`` and ``full``,
ArcFace) trains on the folder's instances, and its figure is the second epoch's augmented photos per
second (the first pays for start-up), photos decoded and augmented on the CPU as ``instrec train`` does.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from results import write_section

from instrec.config import Config, RuntimeConfig
from instrec.embedding import Embedder
from instrec.embedding.onnx_runtime import CUDA
from instrec.embedding.preprocess import resized_size, to_input
from instrec.recognizer import Recognizer
from instrec.training.augment import augmented_view
from instrec.training.data import read_labelled_folder
from instrec.training.fit import TrainSettings
from instrec.training.train import train_labelled

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WARM_UP = 16  # photos embedded before timing: graph load, CUDA context and kernels' first launch
SINGLES = 50  # photos embedded one per call: the median is a query's cost


def engines() -> list[tuple[str, dict[str, Any]]]:
    """(row name, runtime settings) of each engine this machine can run."""
    import onnxruntime
    import torch

    rows = [("ONNX Runtime, CPU", {"engine": "onnx", "device": "cpu"}), ("torch, CPU", {"engine": "torch", "device": "cpu"})]
    if CUDA in onnxruntime.get_available_providers():
        rows.append(("ONNX Runtime, CUDA", {"engine": "onnx", "device": "cuda"}))
    if torch.cuda.is_available():
        rows.append(("torch, CUDA", {"engine": "torch", "device": "cuda"}))
    return rows


def embedding_rows(photos: list[Image.Image]) -> list[str]:
    config, reference, lines = Config(), None, []
    for name, runtime in engines():
        embedder = Embedder(config.descriptor, config.runtime.model_copy(update=runtime), config.tuning.descriptor)
        embedder.embed(photos[:WARM_UP])
        started = time.perf_counter()
        vectors = embedder.embed(photos)
        ms = 1e3 * (time.perf_counter() - started) / len(photos)
        alone = []  # a query's case: one photo per call
        for photo in photos[:SINGLES]:
            started = time.perf_counter()
            embedder.embed([photo])
            alone.append(1e3 * (time.perf_counter() - started))
        reference = vectors if reference is None else reference
        agreement = float(np.min(np.sum(vectors * reference, axis=1)))  # rows are unit vectors
        lines.append(f"| {name} | {ms:.2f} | {statistics.median(alone):.2f} | {agreement:.6f} |")
        print(lines[-1], flush=True)
    return lines


def enrolment_rows(paths: list[Path], scratch: Path) -> list[str]:
    root = scratch / "photos"
    for number, source in enumerate(paths):
        (root / f"photo-{number:05d}").mkdir(parents=True)
        shutil.copy(source, root / f"photo-{number:05d}" / source.name)
    lines = []
    for name, runtime in engines():
        overrides = {f"runtime.{key}": value for key, value in runtime.items()}
        with Recognizer.open(Path(tempfile.mkdtemp(dir=scratch)), **overrides) as recognizer:
            recognizer.enroll([Image.new("RGB", (64, 64))], instance_id="warm-up")  # model and indexes loaded first
            started = time.perf_counter()
            report = recognizer.enroll_folder(root)
            seconds = time.perf_counter() - started
        lines.append(f"| {name} | {report.images_added / seconds:.1f} | {len(report.errors)} |")
        print(lines[-1], flush=True)
    return lines


def preparing_row(photos: list[Image.Image], count: int) -> str:
    """Views the CPU alone draws for fine-tuning from decoded photos (squares at the descriptor's size): a bound on any device."""
    tuning = Config().tuning.descriptor
    size = resized_size(tuning.max_side, tuning.max_side, tuning.max_side, tuning.size_multiple)
    started = time.perf_counter()
    for k in range(count):
        to_input(augmented_view(photos[k % len(photos)], 0, k, 0, size, 1), size, (0.5,) * 3, (0.5,) * 3)
    return f"| augment alone (photos already decoded), one CPU thread | {count / (time.perf_counter() - started):.1f} |"


def training_rows(data: Path, epoch_images: int, scratch: Path, photos: list[Image.Image]) -> list[str]:
    import torch

    folder = read_labelled_folder(data)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    lines = [preparing_row(photos, epoch_images)]
    for method, device in ((method, device) for method in ("partial", "full") for device in devices):
        # "auto", not "cuda", for the GPU row: the photos' descriptors come from ONNX Runtime, which may have no CUDA.
        config = Config(runtime=RuntimeConfig(device="auto" if device == "cuda" else device))
        settings = TrainSettings(method, "arcface", epochs=2, val_fraction=0.0, views=0, epoch_images=epoch_images)
        ends: list[float] = []
        out = scratch / f"model-{method}-{device}"
        train_labelled(folder, out, settings, config, epochs_report=lambda *_: ends.append(time.perf_counter()))
        lines.append(f"| {method}, ArcFace, {device} | {epoch_images / (ends[1] - ends[0]):.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "ukbench-dev")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epoch-images", type=int, default=256)
    parser.add_argument("--machine", default="2-core development machine")
    parser.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"needs {args.data}", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in {".jpg", ".png"})[: args.images]
    photos = [Image.open(path).convert("RGB") for path in paths]
    lines = [
        f"Data: {len(photos)} photos of {args.data.name} ({photos[0].width}x{photos[0].height}); the default descriptor.",
        "",
        f"**Descriptor** (wall, after a warm-up; batches of the default size, and one photo per call, median of {SINGLES}; "
        "agreement: the lowest cosine to the first row's vector)",
        "",
        "| engine | ms / photo, batched | ms, one photo alone | agreement |",
        "|---|---|---|---|",
    ]
    lines += embedding_rows(photos)
    with tempfile.TemporaryDirectory(prefix="instrec-bench-gpu-") as scratch:
        lines += ["", "**Enrolment** (a folder, one instance per photo, SIFT on the CPU cores)", ""]
        lines += ["| engine | images/s (wall) | photos refused |", "|---|---|---|"]
        lines += enrolment_rows(paths, Path(scratch))
        lines += ["", f"**Fine-tuning**, {args.epoch_images} augmented photos per epoch, the second epoch timed", ""]
        lines += ["| method, loss, device | photos/s |", "|---|---|"]
        lines += training_rows(args.data, args.epoch_images, Path(scratch), photos)
    print("\n".join(lines))
    if args.results:
        command = shlex.join(["python", "benchmarks/bench_gpu.py", *sys.argv[1:]])
        write_section(f"GPU and CPU: {args.machine}", command, lines, machine=f"the {args.machine}", data=str(args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
