"""A labelled folder (one sub-folder of images per instance), its digest, and a split by instance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from instrec.errors import InstrecError
from instrec.images import iter_image_files


@dataclass(frozen=True)
class LabelledFolder:
    root: Path
    instances: tuple[str, ...]  # sub-folder names, sorted
    files: tuple[tuple[Path, ...], ...]  # each instance's images, sorted by name (the first is its 1-shot)

    @property
    def image_count(self) -> int:
        return sum(len(files) for files in self.files)

    def subset(self, keep: Callable[[str], bool]) -> "LabelledFolder":
        """The instances whose names ``keep`` accepts (e.g. a benchmark's training half)."""
        kept = [(name, files) for name, files in zip(self.instances, self.files) if keep(name)]
        return LabelledFolder(self.root, tuple(name for name, _ in kept), tuple(files for _, files in kept))

    def digest(self) -> str:
        """Hash of every instance name and image's bytes: a model records what it was trained on."""
        h = hashlib.sha256()
        for name, files in zip(self.instances, self.files):
            h.update(name.encode() + b"\0")
            for path in files:
                h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()[:16]


def read_labelled_folder(root: str | Path) -> LabelledFolder:
    """Instances with at least one image; at least two of them, else there is nothing to tell apart."""
    root = Path(root)
    if not root.is_dir():
        raise InstrecError(f"training folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed = [(folder.name, tuple(iter_image_files(folder))) for folder in folders]
    listed = [(name, files) for name, files in listed if files]
    if len(listed) < 2:
        raise InstrecError(f"{root}: training needs one sub-folder of images per instance, at least 2 (found {len(listed)})")
    return LabelledFolder(root, tuple(name for name, _ in listed), tuple(files for _, files in listed))


def split_by_instance(instance_count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) instance indices, disjoint: validation measures instances never trained on."""
    if not 0.0 <= val_fraction < 1.0:
        raise InstrecError("--val-fraction must be in [0, 1)")
    n_val = int(round(val_fraction * instance_count))
    if val_fraction > 0 and not 2 <= n_val <= instance_count - 2:
        raise InstrecError(
            f"--val-fraction {val_fraction} of {instance_count} instances leaves {n_val} for validation: "
            "both sides need at least 2 instances (or use --val-fraction 0)"
        )
    order = np.random.default_rng(seed).permutation(instance_count)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
