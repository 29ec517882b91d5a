"""Embedding speed: torch eager vs ONNX Runtime on the same images, and how well they agree.

    python benchmarks/bench_embedding.py [--backbone efficientnet_lite0] [--max-side 224]
                                         [--images 64] [--threads 0] [--repeats 3]

Both engines get the same thread count (``--threads``, 0 = one per CPU). Times are end-to-end
``Embedder.embed`` (preprocessing included, shown separately too), best of ``--repeats`` runs after
a warm-up. Exits 1 if the engines disagree (max |diff| >= 1e-4 or cosine <= 0.9999).
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
import torch
from PIL import Image
from skimage import data

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "clock", "colorwheel",
           "immunohistochemistry", "hubble_deep_field", "retina", "cat", "page", "moon", "brick", "grass")
ASPECTS = ((4, 3), (3, 4), (1, 1), (16, 9))  # exact ratios, so equal-size images batch together
BATCH_SIZES = (1, 16)


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


def ms_per_image(run: Callable[[], object], count: int, repeats: int) -> float:
    run()  # warm-up: first-call allocations, ORT kernel selection
    best = min(_seconds(run) for _ in range(repeats))
    return 1000 * best / count


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--max-side", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    descriptor = DescriptorConfig(backbone=args.backbone, max_side=args.max_side)
    images = sample_images(args.images)
    print(f"{args.backbone} at {args.max_side}px, {len(images)} images, {threads} threads, "
          f"torch {torch.__version__}, best of {args.repeats}")

    with tempfile.TemporaryDirectory() as cache:
        rows, vectors = [], {}
        for batch in BATCH_SIZES:
            timings = {}
            for engine in ("torch", "onnx"):
                runtime = RuntimeConfig(engine=engine, batch_size=batch, threads=threads)
                embedder = Embedder(descriptor, runtime, cache_dir=Path(cache))
                timings[engine] = ms_per_image(lambda: embedder.embed(images), len(images), args.repeats)
                vectors[engine] = embedder.embed(images)
            rows.append((batch, timings["torch"], timings["onnx"]))
        prep = ms_per_image(lambda: [embedder.preprocess(i) for i in images], len(images), args.repeats)

    print(f"\n{'batch':>5} {'torch ms/img':>13} {'onnx ms/img':>12} {'speed-up':>9}")
    for batch, torch_ms, onnx_ms in rows:
        print(f"{batch:>5} {torch_ms:>13.2f} {onnx_ms:>12.2f} {torch_ms / onnx_ms:>8.2f}x")
    print(f"(preprocessing alone, in both: {prep:.2f} ms/img)")

    diff = float(np.abs(vectors["torch"] - vectors["onnx"]).max())
    cosine = float((vectors["torch"] * vectors["onnx"]).sum(axis=1).min())
    ok = diff < 1e-4 and cosine > 0.9999
    print(f"\nparity: max |diff| {diff:.2e}, min cosine {cosine:.7f} -> {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
