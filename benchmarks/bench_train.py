"""Does a trained embedding beat the pretrained one on instances it never saw?

COIL-100 (trained on objects 2-50, measured on 51-100) and AT&T faces (persons 1-20 / 21-40), split
by instance: the frozen EfficientNet-Lite0 descriptor as it is, supervised within-class whitening
fitted on the training half, and the trained head (several seeds). 1 shot (the first photo of each
measured instance enrolled, the rest queried): top-1 over the measured half, and AUROC with a fifth
of the measured instances held out as unknown (a query's score is its best cosine).

Descriptors are computed once (the photos and their augmented views) into --cache and reused.

    python benchmarks/bench_train.py [--cache /tmp/instrec-bench-train] [--seeds 0 1 2] [--dims 128 256 512]
        [--losses arcface proxy-anchor] [--epochs 30] [--results]
    python benchmarks/bench_train.py --methods partial [full] --losses arcface protonet --dims 256 --seeds 0
        --epochs 4 --epoch-images 320 [--datasets att-faces coil100] [--results]

The second form has its own section: fine-tuned backbones against the pretrained descriptor and the
whitening, and the best COIL-trained model on ukbench-dev (does it collapse on another domain?).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.evaluation.metrics import auroc
from instrec.training.data import LabelledFolder, read_labelled_folder
from instrec.training.features import FeatureSet, cached_features, embed_folder
from instrec.training.fit import TrainSettings, fit_projection
from instrec.training.train import train_labelled
from instrec.training.metrics import first_photos, one_shot
from results import write_section

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VIEWS = 4  # augmented views cached per training photo (2 shared CPU cores bound how many)


def _number(name: str) -> int:
    return int(re.sub(r"\D", "", name))


@dataclass(frozen=True)
class Protocol:
    dataset: str
    trains_on: Callable[[int], bool]
    measures: Callable[[int], bool]
    label: str
    # Fine-tuned rows embed the measured photos anew per model: every n-th photo of each measured instance
    # (its first, the shot, kept), so a COIL row costs 900 forward passes on 2 cores, not 3,600.
    tuned_every: int


PROTOCOLS = (
    Protocol("coil100", lambda n: 2 <= n <= 50, lambda n: 51 <= n <= 100, "COIL-100 objects 51-100 (trained on 2-50)", 4),
    Protocol("att-faces", lambda n: 1 <= n <= 20, lambda n: 21 <= n <= 40, "AT&T persons 21-40 (trained on 1-20)", 1),
)
FINETUNED_SECTION = "Training: fine-tuning the backbone (instrec train --method partial|full)"


def halves(protocol: Protocol, embedder: Embedder, cache: Path) -> tuple[FeatureSet, FeatureSet]:
    """(training half with augmented views, measured half: photos only), from the cache when there."""
    folder = read_labelled_folder(DATA / protocol.dataset)
    out = []
    for side, keep, views in (("train", protocol.trains_on, VIEWS), ("test", protocol.measures, 0)):
        part = folder.subset(lambda name: keep(_number(name)))
        key = f"{part.digest()}:{embedder.digest}:views={views}:seed=0"
        path = cache / f"{protocol.dataset}-{side}.npz"
        out.append(cached_features(path, key, lambda: embed_folder(embedder, part, views, 0, progress=_printed(path.name))))
    return out[0], out[1]


def _printed(name: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"  {name}: {done}/{total} photos", flush=True)

    return report


def open_set_auroc(vectors: np.ndarray, test: FeatureSet) -> float | None:
    """A fifth of the measured instances (drawn with seed 0) never enrolled: known vs unknown by best cosine."""
    instances = np.unique(test.labels)
    unknown = np.random.default_rng(0).choice(instances, len(instances) // 5, replace=False)
    known = ~np.isin(test.labels, unknown)
    shot = first_photos(test.labels, test.images) & known
    best = (vectors[~shot] @ vectors[shot].T).max(axis=1)
    return auroc(best[known[~shot]], best[~known[~shot]])


def measured(name: str, vectors: np.ndarray, test: FeatureSet) -> dict[str, Any]:
    return {
        "row": name,
        "top1": one_shot(vectors, test.labels, test.images).top1,
        "auroc": open_set_auroc(vectors, test),
    }


def rows_of(protocol: Protocol, train: FeatureSet, test: FeatureSet, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [measured("pretrained, cosine", test.vectors, test)]
    for dims in args.dims:
        # The whitening needs no validation: it is fitted on every training instance, and has no seed.
        whitening = fit_projection(train, TrainSettings(dims=dims, val_fraction=0.0)).projection
        rows.append(measured(f"supervised whitening ({dims}-d)", whitening.apply(test.vectors), test))
        for loss in args.losses:
            for seed in args.seeds:
                started = time.perf_counter()
                fitted = fit_projection(train, TrainSettings("head", loss, args.epochs, seed, 0.2, dims))
                row = measured(f"head {loss} ({dims}-d), seed {seed}", fitted.projection.apply(test.vectors), test)
                row |= {"seconds": time.perf_counter() - started, "best_epoch": fitted.metrics["best_epoch"]}
                rows.append(row)
                print(protocol.dataset, row, flush=True)
    return rows


def thinned(folder: LabelledFolder, every: int) -> LabelledFolder:
    return LabelledFolder(folder.root, folder.instances, tuple(files[::every] for files in folder.files))


def finetuned_rows(
    protocol: Protocol, embedder: Embedder, config: Config, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[tuple[float, Path]]]:
    """Pretrained, whitening and fine-tuned rows on every ``tuned_every``-th measured photo; (top-1, model) of each tuned one."""
    folder = read_labelled_folder(DATA / protocol.dataset)
    part = folder.subset(lambda name: protocol.trains_on(_number(name)))
    measured_part = thinned(folder.subset(lambda name: protocol.measures(_number(name))), protocol.tuned_every)
    train, _ = halves(protocol, embedder, args.cache)
    test = features_of(embedder, measured_part, args.cache / f"{protocol.dataset}-test-every{protocol.tuned_every}.npz")
    rows, models = [measured("pretrained, cosine", test.vectors, test)], []
    for dims in args.dims:
        whitening = fit_projection(train, TrainSettings(dims=dims, val_fraction=0.0)).projection
        rows.append(measured(f"supervised whitening ({dims}-d)", whitening.apply(test.vectors), test))
        for method, loss, seed in ((m, lo, se) for m in args.methods if m != "head" for lo in args.losses for se in args.seeds):
            settings = TrainSettings(method, loss, args.epochs, seed, 0.2, dims, VIEWS, args.epoch_images)
            name = f"{method} {loss} ({dims}-d), seed {seed}"
            started = time.perf_counter()
            cache = args.cache / (f"{protocol.dataset}-train.npz" if seed == 0 else f"{protocol.dataset}-train-seed{seed}.npz")
            out = args.cache / "models" / f"{protocol.dataset}-{method}-{loss}-{dims}-{seed}"
            result = train_labelled(part, out, settings, config, cache, epochs_report=lambda *a: print(" ", name, a, flush=True))
            seconds = time.perf_counter() - started
            tuned = Embedder(
                config.descriptor.model_copy(update={"weights": str(result.model)}), config.runtime, config.tuning.descriptor
            )
            row = measured(name, embed_folder(tuned, measured_part, 0, 0).vectors, test)
            rows.append(row | {"seconds": seconds, "best_epoch": result.metrics["best_epoch"]})
            models.append((row["top1"], result.model))
            print(protocol.dataset, rows[-1], flush=True)
    return rows, models


def features_of(embedder: Embedder, folder: LabelledFolder, path: Path) -> FeatureSet:
    key = f"{folder.digest()}:{embedder.digest}:views=0:seed=0"
    return cached_features(path, key, lambda: embed_folder(embedder, folder, 0, 0, progress=_printed(path.name)))


def no_collapse(embedder: Embedder, config: Config, model: Path, cache: Path) -> list[str]:
    """The COIL-trained model on ukbench-dev (another domain), against the pretrained descriptor."""
    folder = read_labelled_folder(DATA / "ukbench-dev")
    test = features_of(embedder, folder, cache / "ukbench-dev.npz")
    tuned = Embedder(config.descriptor.model_copy(update={"weights": str(model)}), config.runtime, config.tuning.descriptor)
    rows = [
        measured("pretrained, cosine", test.vectors, test),
        measured(f"COIL-trained {model.name}", embed_folder(tuned, folder, 0, 0).vectors, test),
    ]
    lines = ["**ukbench-dev (125 objects x 4 photos), the best COIL-trained model**, 1 shot", ""]
    lines += ["| | top-1 | AUROC (1/5 unknown) |", "|---|---|---|"]
    return [*lines, *(f"| {row['row']} | {row['top1']:.3f} | {row['auroc']:.3f} |" for row in rows), ""]


def table(protocol: Protocol, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"**{protocol.label}**, 1 shot", "", "| | top-1 | AUROC (1/5 unknown) | best epoch | s |", "|---|---|---|---|---|"]
    for row in rows:
        extra = f"{row['best_epoch']} | {row['seconds']:.0f}" if "seconds" in row else " | "
        lines.append(f"| {row['row']} | {row['top1']:.3f} | {row['auroc']:.3f} | {extra} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path("/tmp/instrec-bench-train"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--losses", nargs="*", default=["arcface", "proxy-anchor"])
    parser.add_argument("--dims", type=int, nargs="*", default=[128, 256, 512])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", nargs="*", default=["head"], help="head, or partial / full (their own section)")
    parser.add_argument("--epoch-images", type=int, default=0, help="partial / full: augmented photos per epoch")
    parser.add_argument("--datasets", nargs="*", default=[p.dataset for p in PROTOCOLS])
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    started_load = os.getloadavg()[0]
    config = Config.load()
    embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
    finetuning = any(method != "head" for method in args.methods)
    lines = list(FINETUNED_INTRO if finetuning else HEAD_INTRO)
    best: tuple[float, Path] | None = None
    for protocol in sorted((p for p in PROTOCOLS if p.dataset in args.datasets), key=lambda p: args.datasets.index(p.dataset)):
        if finetuning:
            rows, models = finetuned_rows(protocol, embedder, config, args)
            if protocol.dataset == "coil100" and models:
                best = max(models)
        else:
            train, test = halves(protocol, embedder, args.cache)
            rows = rows_of(protocol, train, test, args)
        lines += table(protocol, rows)
    if best is not None:
        lines += no_collapse(embedder, config, best[1], args.cache)
    if finetuning:
        load = f"Load average {started_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        lines += [f"{load}, on {os.cpu_count()} cores.", ""]
    print("\n".join(lines))
    if args.results:
        command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]).replace(" --results", "")
        section = FINETUNED_SECTION if finetuning else "Training: a projection after the frozen backbone (instrec train)"
        write_section(section, command.strip(), lines)


HEAD_INTRO = [
    f"Training halves: each photo and {VIEWS} augmented views. The whitening rows are fitted on every training",
    "instance; a head holds out 1/5 of them (drawn by its seed) for validation, starts from the whitening of",
    "the other 4/5 and keeps its best epoch: at best epoch 0 it is that whitening, so its spread over seeds",
    "is also the whitening's over training subsets.",
    "",
]
FINETUNED_INTRO = [
    "Measured photos: every n-th of each measured instance (COIL-100: every 4th of 72 views, AT&T: all 10), the",
    "first (the shot) kept; every row of a table on the same photos. The whitening is fitted on every training",
    "instance; a fine-tuned model holds out 1/5 of them (drawn by its seed) for validation (at most 16 photos",
    "each), starts from the whitening of the other 4/5, trains on new augmented views each epoch (square, 224 px)",
    "and keeps its best epoch (0: that whitening, the backbone untouched). s: the whole `instrec train` run",
    "(the descriptors of the training photos come from the cache), on the load given below.",
    "",
]


if __name__ == "__main__":
    main()
