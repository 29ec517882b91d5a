"""Does a trained embedding beat the pretrained one on instances it never saw?

COIL-100 (trained on objects 2-50, measured on 51-100) and AT&T faces (persons 1-20 / 21-40), split
by instance: the frozen EfficientNet-Lite0 descriptor as it is, supervised within-class whitening
fitted on the training half, and the trained head (several seeds). 1 shot (the first photo of each
measured instance enrolled, the rest queried): top-1 over the measured half, and AUROC with a fifth
of the measured instances held out as unknown (a query's score is its best cosine).

Descriptors are computed once (the photos and their augmented views) into --cache and reused.

    python benchmarks/bench_train.py [--cache /tmp/instrec-bench-train] [--seeds 0 1 2] [--dims 128 256 512]
        [--losses arcface proxy-anchor] [--epochs 30] [--results]
"""

from __future__ import annotations

import argparse
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
from instrec.training.data import read_labelled_folder
from instrec.training.features import FeatureSet, cached_features, embed_folder
from instrec.training.fit import TrainSettings, fit_projection
from instrec.training.losses import LOSSES
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


PROTOCOLS = (
    Protocol("coil100", lambda n: 2 <= n <= 50, lambda n: 51 <= n <= 100, "COIL-100 objects 51-100 (trained on 2-50)"),
    Protocol("att-faces", lambda n: 1 <= n <= 20, lambda n: 21 <= n <= 40, "AT&T persons 21-40 (trained on 1-20)"),
)


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
    parser.add_argument("--losses", nargs="*", default=list(LOSSES))
    parser.add_argument("--dims", type=int, nargs="*", default=[128, 256, 512])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    config = Config.load()
    embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
    lines = [f"Training halves: each photo and {VIEWS} augmented views. The whitening rows are fitted on every training"]
    lines += ["instance; a head holds out 1/5 of them (drawn by its seed) for validation, starts from the whitening of"]
    lines += ["the other 4/5 and keeps its best epoch: at best epoch 0 it is that whitening, so its spread over seeds"]
    lines += ["is also the whitening's over training subsets.", ""]
    for protocol in PROTOCOLS:
        train, test = halves(protocol, embedder, args.cache)
        rows = rows_of(protocol, train, test, args)
        lines += table(protocol, rows)
    print("\n".join(lines))
    if args.results:
        command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]).replace(" --results", "")
        write_section("Training: a projection after the frozen backbone (instrec train)", command.strip(), lines)


if __name__ == "__main__":
    main()
