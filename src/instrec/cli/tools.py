"""Commands beside the library: fit whitening, evaluate settings, serve, the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from instrec.cli.common import (
    HomeOption,
    JsonOption,
    SetOption,
    add_row,
    app,
    console,
    load_config,
    out,
    progress_bar,
    reported,
    show,
)
from instrec.errors import InstrecError
from instrec.extras import require_extra
from instrec.images import iter_image_files


@app.command()
def whiten(
    pool: list[Path] = typer.Argument(
        ..., help="Files or folders (searched with their subfolders) of unlabelled photos like the gallery's."
    ),
    output: Path = typer.Option(..., "--out", help="Where to write the fitted map (.npz)."),
    dims: int = typer.Option(256, "--dims", help="Principal directions kept: the new vector size."),
    power: float = typer.Option(0.5, "--power", help="0 = PCA reduction only, 1 = full whitening."),
    shrinkage: float = typer.Option(0.1, "--shrinkage", help="Share of the mean variance added to every direction's."),
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit PCA-whitening on a pool of photos; use it with --set descriptor.whitening=FILE (a new descriptor:
    a library built without it, or with another, refuses it)."""

    from instrec.embedding import Embedder
    from instrec.embedding.whitening import embed_pool, fit_whitening

    with reported(as_json):
        config = load_config(None, sets)
        files = [f for p in pool for f in (iter_image_files(p, recursive=True) if p.is_dir() else [p])]
        if not files:
            raise InstrecError(f"no images under {', '.join(map(str, pool))}")
        embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
        with progress_bar(not as_json) as progress:
            task = progress.add_task("embed pool", total=len(files))
            vectors, skipped = embed_pool(
                embedder, files, config.limits, lambda done, total: progress.update(task, completed=done)
            )
        for error in skipped:
            console.print(f"[yellow]skipped:[/yellow] {escape(str(error))}")
        whitening = fit_whitening(vectors, dims, power, shrinkage)
        saved = whitening.save(output)
    result = {
        "file": str(saved),
        "pool": whitening.pool_size,
        "skipped": len(skipped),
        "dims": whitening.dims,
        "explained_variance": round(whitening.explained, 4),
        "power": power,
        "shrinkage": shrinkage,
    }
    show(result, as_json)


@app.command()
def evaluate(
    dataset: Path = typer.Argument(..., help="folder-per-instance, or gallery/ + queries/ layout."),
    shots: str = typer.Option(
        "1",
        "--shots",
        help="Images enrolled per instance (folder-per-instance layout); a list like 1,2,3 gives one row per count.",
    ),
    unknown_fraction: float = typer.Option(0.0, "--unknown-fraction", help="Share of instances held out as unknown."),
    seed: int = typer.Option(0, "--seed"),
    compare: Optional[list[str]] = typer.Option(
        None,
        "--compare",
        help="A setting to compare with the baseline (repeatable): "
        '\'name: section.key=value, ...\' or a JSON file {"name": {"section.key": value}}.',
    ),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report."),
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Measure top-1/top-5/MRR/mAP/AUROC, latency and memory in a throw-away library; compare settings."""
    from instrec.evaluation.compare import COLUMNS, parse_shots, settings_from_options, table_cells
    from instrec.evaluation.compare import compare as run_compare
    from instrec.evaluation.report import write_report

    with reported(as_json):
        if report_path is not None:  # before the evaluation, which can take long
            require_extra("report", "instrec evaluate --report")
        settings, shot_counts = settings_from_options(compare), parse_shots(shots)
        with progress_bar(not as_json) as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done)

            rows = run_compare(
                dataset,
                settings,
                shot_counts,
                base=load_config(None, sets),
                unknown_fraction=unknown_fraction,
                seed=seed,
                progress=report,
            )
        if report_path is not None:
            console.print(f"report: {escape(str(write_report(rows, report_path)))}")
    if len(rows) == 1:  # a single run keeps its flat result
        result = rows[0].run.summary
        table = Table("metric", "value")
        for key, value in result.items():
            if not isinstance(value, dict):
                add_row(table, key, f"{value:.4f}" if isinstance(value, float) else str(value))
        show(result, as_json, table)
        return
    table = Table("setting", "shots", *(label for _, label in COLUMNS))
    for row in rows:
        add_row(table, *table_cells(row))
    show({"dataset": str(dataset), "rows": [row.to_dict() for row in rows]}, as_json, table)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Default service.host (127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Default service.port (8000)."),
    workers: Optional[int] = typer.Option(None, help="Default service.workers (1)."),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
) -> None:
    """Serve the REST API and the web page."""
    with reported(False):
        require_extra("service", "instrec serve")
        overrides = {
            k: v for k, v in {"service.host": host, "service.port": port, "service.workers": workers}.items() if v is not None
        }
        config = load_config(home, sets).with_overrides(overrides)
    from instrec.service.app import run

    run(config)


@app.command()
def demo(
    home: Path = typer.Option(Path("instrec-demo"), "--home", help="Where the demo library is written."),
    sets: Optional[list[str]] = SetOption,
) -> None:
    """Enrol real photos shipped with scikit-image and recognise altered views of them."""
    from instrec.demo import run_demo

    with reported(False):
        run_demo(load_config(home, sets), out)
