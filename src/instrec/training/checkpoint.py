"""A fine-tuning run's state after its last finished epoch, in the output directory: a killed run resumes.

The file is keyed by what decides the run (data, descriptor, settings); a run with another key
refuses to overwrite it rather than silently throwing hours of training away.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from instrec.errors import InstrecError
from instrec.training.metrics import EarlyStopping, OneShot

CHECKPOINT = "checkpoint.pt"


class Checkpoint:
    def __init__(self, directory: Path, key: str):
        self.path = directory / CHECKPOINT
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved state (``stopping`` rebuilt as an :class:`EarlyStopping`), or None when there is none."""
        import torch

        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
            raise InstrecError(f"cannot read the checkpoint {self.path} ({exc}): remove it to start over") from exc
        if state.get("key") != self.key:
            raise InstrecError(
                f"{self.path} is the checkpoint of another run (other data or settings): "
                "remove it to start over, or train into another --out"
            )
        stopping = state["stopping"]
        best = None if stopping["best"] is None else OneShot(*stopping["best"])
        state["stopping"] = EarlyStopping(stopping["patience"], stopping["validation"], best, stopping["best_epoch"])
        return dict(state)

    def save(self, epoch: int, model: Any, loss: Any, optimiser: Any, best: Any, stopping: EarlyStopping) -> None:
        """Written under a temporary name, then renamed: a kill mid-write leaves the previous epoch's."""
        import torch

        record = {
            "key": self.key,
            "epoch": epoch,
            "model": model,
            "loss": loss,
            "optimiser": optimiser,
            "best": best,
            "stopping": {
                "patience": stopping.patience,
                "validation": stopping.validation,
                "best": None if stopping.best is None else [stopping.best.top1, stopping.best.margin],
                "best_epoch": stopping.best_epoch,
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as file:
            torch.save(record, file)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename: a power cut leaves one whole epoch or the other
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
