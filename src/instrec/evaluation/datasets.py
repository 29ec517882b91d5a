"""The two dataset layouts ``instrec evaluate`` understands, turned into gallery + queries.

(a) ``DIR/<instance>/<images>``: the first K images (by name) of each instance are enrolled, the
    rest are queries; with an unknown fraction, that share of instances (chosen by the seed) is not
    enrolled at all and all its images must come back "unknown".
(b) ``DIR/gallery/<instance>/...`` enrolled as given, ``DIR/queries/<instance>/...`` as queries,
    ``DIR/queries/_unknown/`` images of no enrolled instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrec.errors import InstrecError
from instrec.images import iter_image_files

UNKNOWN_FOLDER = "_unknown"


@dataclass(frozen=True)
class EvalSplit:
    gallery: list[tuple[str, list[Path]]]  # (instance id, shots)
    queries: list[tuple[Path, str | None]]  # (image, true instance id or None if unknown)
    layout: str

    @property
    def known_queries(self) -> int:
        return sum(1 for _, truth in self.queries if truth is not None)

    @property
    def unknown_queries(self) -> int:
        return len(self.queries) - self.known_queries


def _instance_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_split(root: str | Path, shots: int = 1, unknown_fraction: float = 0.0, seed: int = 0) -> EvalSplit:
    root = Path(root)
    if not root.is_dir():
        raise InstrecError(f"dataset folder {root} does not exist")
    if shots < 1:
        raise InstrecError("--shots must be at least 1")
    if not 0.0 <= unknown_fraction < 1.0:
        raise InstrecError("--unknown-fraction must be in [0, 1)")
    if (root / "gallery").is_dir() and (root / "queries").is_dir():
        return _gallery_queries(root)
    return _folder_per_instance(root, shots, unknown_fraction, seed)


def _gallery_queries(root: Path) -> EvalSplit:
    gallery = [(d.name, iter_image_files(d)) for d in _instance_folders(root / "gallery")]
    gallery = [(name, files) for name, files in gallery if files]
    queries: list[tuple[Path, str | None]] = []
    for folder in _instance_folders(root / "queries"):
        truth = None if folder.name == UNKNOWN_FOLDER else folder.name
        queries.extend((path, truth) for path in iter_image_files(folder))
    if not gallery or not queries:
        raise InstrecError(f"{root}: gallery/ and queries/ must both hold images")
    return EvalSplit(gallery, queries, "gallery/queries")


def _folder_per_instance(root: Path, shots: int, unknown_fraction: float, seed: int) -> EvalSplit:
    folders = [(d.name, iter_image_files(d)) for d in _instance_folders(root)]
    folders = [(name, files) for name, files in folders if files]
    if len(folders) < 2:
        raise InstrecError(f"{root}: expected one sub-folder of images per instance (found {len(folders)})")
    rng = np.random.default_rng(seed)
    n_unknown = int(round(unknown_fraction * len(folders)))
    unknown = {folders[i][0] for i in rng.permutation(len(folders))[:n_unknown]}
    gallery: list[tuple[str, list[Path]]] = []
    queries: list[tuple[Path, str | None]] = []
    for name, files in folders:
        if name in unknown:
            queries.extend((path, None) for path in files)
            continue
        gallery.append((name, files[:shots]))
        queries.extend((path, name) for path in files[shots:])
    if not queries:
        raise InstrecError(f"{root}: no query images left with --shots {shots}")
    return EvalSplit(gallery, queries, "folder-per-instance")
