"""Does a trained embedding beat the pretrained one on instances it never saw?

COIL-100 (trained on objects 2-50, measured on 51-100) and AT&T faces (persons 1-20 / 21-40), split
by instance: the frozen EfficientNet-Lite0 descriptor as it is, supervised within-class whitening
fitted on the training half, and the trained head (several seeds). 1 shot (the first photo of each
measured instance enrolled, the rest queried): top-1 over the measured half, and AUROC with a fifth
of the measured instances held out as unknown (a query's score is its best cosine).

Descriptors are computed once (the photos and their augmented views) into --cache and reused.

    python benchmarks/bench_train.py [--cache /tmp/instrec-bench-train] [--seeds 0 1 2] [--results]
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.training.data import read_labelled_folder
from instrec.training.features import FeatureSet, cached_features, embed_folder

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path("/tmp/instrec-bench-train"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    config = Config.load()
    embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
    for protocol in PROTOCOLS:
        train, test = halves(protocol, embedder, args.cache)
        print(protocol.dataset, train.vectors.shape, test.vectors.shape)


if __name__ == "__main__":
    main()
