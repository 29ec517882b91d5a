"""``instrec train``: a thin layer over :func:`instrec.training.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from instrec.cli.common import JsonOption, SetOption, app, console, load_config, progress_bar, reported, show, stages

if TYPE_CHECKING:
    from instrec.training.distill import DistilSettings


@app.command()
def train(
    folder: Path = typer.Argument(..., help="One sub-folder of photos per instance (at least 2); with --teacher any photos."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (projection + manifest.json)."),
    method: str = typer.Option("whiten", "--method", help="whiten, head (linear head), partial (last blocks too) or full."),
    loss: str = typer.Option("arcface", "--loss", help="arcface, subcenter-arcface, proxy-anchor or protonet."),
    epochs: int = typer.Option(30, "--epochs", help="Most epochs of the head (it stops early on validation)."),
    seed: int = typer.Option(0, "--seed", help="Decides the validation split, the augmented views and the head."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of instances held out for validation."),
    dims: int = typer.Option(256, "--dims", help="Size of the trained descriptor."),
    views: int = typer.Option(4, "--views", help="Augmented views per photo, besides the photo."),
    epoch_images: int = typer.Option(0, "--epoch-images", help="partial/full: photos per epoch (0: each once)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="An .npz to keep the backbone's descriptors in."),
    teacher: Optional[str] = typer.Option(
        None, "--teacher", help="Distil from this backbone (e.g. efficientnet_lite2) on any photos under FOLDER, labels unused."
    ),
    teacher_side: Optional[int] = typer.Option(
        None, "--teacher-side", help="The teacher's long side in px (default: the student's); with --teacher."
    ),
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Learn a projection after the frozen backbone from labelled photos; use it with
    --set descriptor.whitening=MODEL_DIR (a new descriptor: libraries built without it refuse it)."""
    from instrec.training.fit import TrainSettings
    from instrec.training.train import train as run_train

    with reported(as_json):
        if teacher is not None:
            from instrec.training.distill import DistilSettings

            distil_settings = DistilSettings(teacher, epochs, seed, val_fraction, views, teacher_side=teacher_side)
            distilled = _distil(folder, out, distil_settings, method, cache, sets, as_json)
            show({"model": str(distilled[0]), **distilled[1]}, as_json)
            return
        settings = TrainSettings(method, loss, epochs, seed, val_fraction, dims, views, epoch_images)
        with progress_bar(not as_json) as progress:
            stage = stages(progress)

            def epoch(done: int, total: int, mean_loss: float, validation: Any) -> None:
                figure = "" if validation is None else f", validation top-1 {validation.top1:.3f}"
                stage(f"train {method}", done, total)
                if not as_json:
                    console.print(f"epoch {done}: loss {mean_loss:.3f}{figure}")

            result = run_train(folder, out, settings, load_config(None, sets), cache, stage, epoch)
    show({"model": str(result.model), **result.metrics}, as_json)


def _distil(
    folder: Path,
    out: Path,
    settings: "DistilSettings",
    method: str,
    cache: Optional[Path],
    sets: Optional[list[str]],
    as_json: bool,
) -> tuple[Path, dict[str, Any]]:
    from instrec.errors import InstrecError
    from instrec.training.distill import distil

    if method not in ("whiten", "head"):  # "whiten" is the option's default: not asked for
        raise InstrecError(f"--teacher trains a linear head on the frozen backbone; --method {method} cannot distil")
    with progress_bar(not as_json) as progress:
        stage = stages(progress)

        def epoch(done: int, total: int, mean_loss: float, validation: float | None) -> None:
            stage("distil head", done, total)
            if not as_json:
                figure = "" if validation is None else f", validation relational error {validation:.6f}"
                console.print(f"epoch {done}: loss {mean_loss:.4f}{figure}")

        return distil(folder, out, settings, load_config(None, sets), cache, stage, epoch)
