"""Embedding speed: torch eager vs ONNX Runtime on the same images, and how well they agree.

    python benchmarks/bench_embedding.py [--backbone efficientnet_lite0] [--max-side 224]
                                         [--images 64] [--threads 0] [--repeats 5] [--clock wall]

Both engines get the same thread count (``--threads``, 0 = one per CPU) and the same preprocessed
inputs; torch runs under ``inference_mode``. Two tables: the network alone (``Embedder.vectors`` on
preprocessed batches, what the engines differ in) and end to end (``Embedder.embed``, preprocessing
included). The engines are timed in alternation, round after round, so a burst of load from other
processes hits both alike; each cell is the best round (the median in brackets), after a warm-up.
``--clock cpu`` times this process's CPU time instead of wall time: with ``--threads 1`` a figure
that other processes' load barely moves (with more threads it also counts the threads' spinning).
Exits 1 if the engines disagree (max |diff| >= 1e-4 or cosine <= 0.9999).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from skimage import data

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.profiles import DescriptorTuning
from instrec.embedding import Embedder
from instrec.embedding.preprocess import batches_by_size

SAMPLES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "clock",
    "colorwheel",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "cat",
    "page",
    "moon",
    "brick",
    "grass",
)
ASPECTS = ((4, 3), (3, 4), (1, 1), (16, 9))  # exact ratios, so equal-size images batch together
BATCH_SIZES = (1, 16)
ENGINES = ("torch", "onnx")  # baseline first


def sample_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Random crops of scikit-image's bundled photos, cycling through a few aspect ratios."""
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB") for name in SAMPLES]
    images = []
    for i in range(count):
        photo, (aw, ah) = photos[i % len(photos)], ASPECTS[i % len(ASPECTS)]
        largest = min(photo.width // aw, photo.height // ah)
        unit = int(rng.integers(largest // 2, largest + 1))
        w, h = aw * unit, ah * unit
        x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
        images.append(photo.crop((x, y, x + w, y + h)))
    return images


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds(run: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    run()
    return clock() - start


def input_batches(embedder: Embedder, images: list[Image.Image]) -> list[np.ndarray]:
    """The stacked network inputs ``embed`` would build for these images."""
    sizes = [embedder.input_size(image) for image in images]
    return [
        np.stack([embedder.preprocess(images[i]) for i in batch]) for batch in batches_by_size(sizes, embedder.runtime.batch_size)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--max-side", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    descriptor, tuning = DescriptorConfig(backbone=args.backbone), DescriptorTuning(max_side=args.max_side)
    images = sample_images(args.images)
    print(
        f"{args.backbone} at {args.max_side}px, {len(images)} images, {threads} threads, "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.clock} clock, "
        f"best of {args.repeats} rounds; load average {os.getloadavg()[0]:.1f}"
    )

    with tempfile.TemporaryDirectory() as cache:
        embedders = {
            (engine, batch): Embedder(
                descriptor, RuntimeConfig(engine=engine, batch_size=batch, threads=threads), tuning, Path(cache)
            )
            for batch in BATCH_SIZES
            for engine in ENGINES
        }
    work = {}
    for key, embedder in embedders.items():
        inputs = input_batches(embedder, images)
        work[key, "network"] = lambda e=embedder, inputs=inputs: [e.vectors(x) for x in inputs]
        work[key, "end to end"] = lambda e=embedder: e.embed(images)
    for run in work.values():
        run()  # warm-up: first-call allocations, ORT kernel selection
    times: dict[tuple, list[float]] = {key: [] for key in work}
    for _ in range(args.repeats):
        for key, run in work.items():
            times[key].append(1000 * seconds(run, CLOCKS[args.clock]) / len(images))
    first = embedders[ENGINES[0], BATCH_SIZES[0]]
    prep = min(
        1000 * seconds(lambda: [first.preprocess(i) for i in images], CLOCKS[args.clock]) / len(images)
        for _ in range(args.repeats)
    )

    for mode in ("network", "end to end"):
        print(f"\n{mode}: ms/img, best (median)\n{'batch':>5} {'torch':>15} {'onnx':>15} {'speed-up':>15}")
        for batch in BATCH_SIZES:
            slow, fast = (times[(engine, batch), mode] for engine in ENGINES)
            print(
                f"{batch:>5} {_cell(slow):>15} {_cell(fast):>15} "
                f"{min(slow) / min(fast):>7.2f}x ({np.median(slow) / np.median(fast):.2f}x)"
            )
    print(f"(preprocessing alone: {prep:.2f} ms/img; load average now {os.getloadavg()[0]:.1f})")

    vectors = {engine: embedders[engine, BATCH_SIZES[-1]].embed(images) for engine in ENGINES}
    diff = float(np.abs(vectors["torch"] - vectors["onnx"]).max())
    cosine = float((vectors["torch"] * vectors["onnx"]).sum(axis=1).min())
    ok = diff < 1e-4 and cosine > 0.9999
    print(f"\nparity: max |diff| {diff:.2e}, min cosine {cosine:.7f} -> {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def _cell(ms: list[float]) -> str:
    return f"{min(ms):.2f} ({np.median(ms):.2f})"


if __name__ == "__main__":
    sys.exit(main())
