"""``instrec export``: a thin layer over :func:`instrec.training.export.export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from instrec.cli.common import JsonOption, SetOption, app, console, load_config, progress_bar, reported, show, stages


@app.command()
def export(
    model: Path = typer.Argument(..., help="Model directory: one from instrec train, or a new one for the pretrained model."),
    int8: bool = typer.Option(False, "--int8", help="Also quantise to INT8, kept only if it passes the quality gate."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Photos like the gallery's, to calibrate INT8."),
    check: Optional[Path] = typer.Option(
        None, "--check", help="Other photos, one sub-folder per instance: the gate measures INT8 against fp32 on them."
    ),
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Write the descriptor's network as ONNX (descriptor.onnx); with --int8 also descriptor-int8.onnx
    if it passes the gate, used with --set descriptor.precision=int8 (a new descriptor: libraries built
    at fp32 refuse it)."""
    from instrec.errors import InstrecError
    from instrec.training.export import export as run_export

    with reported(as_json):
        if int8 and (calibration is None or check is None):
            raise InstrecError("--int8 needs --calibration PHOTOS and --check LABELLED")
        if not int8 and (calibration is not None or check is not None):
            raise InstrecError("--calibration and --check are for --int8")
        with progress_bar(not as_json) as progress:
            stage = stages(progress)

            result = run_export(model, load_config(None, sets), calibration, check, progress=stage)
    if result.verdict is not None and not as_json:
        if result.verdict.passed:
            console.print("INT8 passed the gate: use it with --set descriptor.precision=int8")
        else:
            console.print("[yellow]INT8 refused, fp32 kept:[/yellow] " + "; ".join(result.verdict.failures))
    show(result.to_dict(), as_json)
