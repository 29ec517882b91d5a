"""``instrec`` command line: a thin layer over :class:`instrec.Recognizer` and the evaluator.

Every command takes ``--home`` (or ``INSTREC_HOME``) and ``--set section.key=value`` overrides, so
defaults live only in :mod:`instrec.config`. ``--json`` prints exactly one JSON object for scripts.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from instrec.config import Config, parse_assignments
from instrec.errors import InstrecError
from instrec.extras import require_extra
from instrec.images import iter_image_files

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Recognise specific instances from 1-3 shots each.")
console = Console(stderr=True)
out = Console()

HomeOption = typer.Option(None, "--home", help="Library folder (default ./instrec-data or $INSTREC_HOME).")
SetOption = typer.Option(None, "--set", help="Override a setting, e.g. --set index.backend=flat (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def _config(home: Optional[Path], sets: Optional[list[str]]) -> Config:
    try:
        return Config.load(home=home, overrides=parse_assignments(sets))
    except InstrecError as error:
        _fail(error)
        raise  # unreachable: _fail exits


@contextmanager
def _recognizer(home: Optional[Path], sets: Optional[list[str]]) -> Iterator[Any]:
    """The library's recognizer; an InstrecError while opening or using it exits with its message."""
    from instrec.recognizer import Recognizer

    try:
        with Recognizer(_config(home, sets)) as recognizer:
            yield recognizer
    except InstrecError as error:
        _fail(error)


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or not console.is_terminal,
        transient=True,
    )
    with progress:
        yield progress


def _emit(payload: dict[str, Any], as_json: bool, table: Table | None = None) -> None:
    if as_json:
        out.print_json(json.dumps(payload, default=str))
    elif table is not None:
        out.print(table)


def _add_row(table: Table, *cells: str) -> None:
    """A row of data, shown as it is: ids, labels and paths are the user's, never rich markup."""
    table.add_row(*(escape(cell) for cell in cells))


def _fail(error: Exception) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(code=2)


@app.command()
def enroll(
    folder: Path = typer.Argument(..., help="One sub-folder per instance (folder name = instance id), 1-3 images each."),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Enrol a folder of instances. Re-running adds only new images; bad files are skipped and listed.

    The 'unknown' threshold is not re-measured here: `instrec calibrate` does that, and `instrec
    serve` does it by itself once the gallery has changed materially."""
    try:
        with _recognizer(home, sets) as recognizer, _progress() as progress:
            task = progress.add_task("enrolling", total=None)
            report = recognizer.enroll_folder(
                folder, progress=lambda n, total, name: progress.update(task, completed=n, total=total, description=escape(name))
            )
            calibration, stale = recognizer.calibration, recognizer.stats()["calibration_stale"]
    except InstrecError as error:
        _fail(error)
    payload = {
        **report.to_dict(),
        "threshold": calibration.threshold,
        "calibration": calibration.source,
        "calibration_stale": stale,
    }
    if not as_json:
        console.print(
            f"enrolled {report.images_added} images of {report.instances} instances "
            f"({report.duplicates} already there) in {report.seconds:.1f} s"
        )
        for skipped in report.errors:
            console.print(f"[yellow]skipped[/yellow] {escape(str(skipped))}")
        console.print(
            f"unknown threshold: {calibration.threshold:.3f} ({escape(calibration.source)})"
            + ("; the gallery has changed since: run `instrec calibrate`" if stale else "")
        )
    _emit(payload, as_json)


@app.command()
def recognize(
    images: list[Path] = typer.Argument(..., help="Query image(s)."),
    k: int = typer.Option(5, "-k", help="How many instances to list."),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Top-k instances for each image, or 'unknown' when nothing is close enough."""
    try:
        with _recognizer(home, sets) as recognizer:
            results = [(path, recognizer.recognize(path, k=k)) for path in images]
    except InstrecError as error:
        _fail(error)
    if as_json:
        payload = {"results": [{"image": str(p), **r.to_dict()} for p, r in results]}
        _emit(payload if len(results) > 1 else payload["results"][0], True)
        return
    for path, result in results:
        verdict = (
            "[bold red]unknown[/bold red]" if result.unknown else f"[bold green]{escape(result.matches[0].label)}[/bold green]"
        )
        out.print(f"{escape(str(path))}: {verdict}  ({result.timing_ms['total']:.0f} ms)")
        table = Table("rank", "instance", "label", "score", "confidence")
        for rank, match in enumerate(result.matches, 1):
            _add_row(table, str(rank), match.instance_id, match.label, f"{match.score:.3f}", f"{match.confidence:.2f}")
        out.print(table)


@app.command()
def remove(
    instance_id: str = typer.Argument(...),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
) -> None:
    """Remove an instance with its images and vectors."""
    try:
        with _recognizer(home, sets) as recognizer:
            recognizer.remove(instance_id)
    except InstrecError as error:
        _fail(error)
    console.print(f"removed {escape(instance_id)}")


@app.command("list")
def list_instances(
    search: Optional[str] = typer.Option(None, help="Only labels/ids containing this text."),
    limit: int = typer.Option(100),
    offset: int = typer.Option(0),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """List enrolled instances."""
    with _recognizer(home, sets) as recognizer:
        items = recognizer.gallery.list(offset=offset, limit=limit, search=search)
        total = recognizer.gallery.count(search)
    table = Table("id", "label", "images", "metadata")
    for item in items:
        _add_row(table, item.id, item.label, str(item.image_count), json.dumps(item.metadata))
    _emit({"total": total, "instances": [i.to_dict() for i in items]}, as_json, table)


@app.command()
def stats(home: Optional[Path] = HomeOption, sets: Optional[list[str]] = SetOption, as_json: bool = JsonOption) -> None:
    """Counts, index type, descriptor and threshold of the library."""
    with _recognizer(home, sets) as recognizer:
        payload = recognizer.stats()
    table = Table("key", "value")
    for key, value in payload.items():
        _add_row(table, key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    _emit(payload, as_json, table)


@app.command()
def calibrate(
    target_far: Optional[float] = typer.Option(None, help="False-accept rate to aim for (default decision.target_far)."),
    negatives: Optional[Path] = typer.Option(
        None, "--negatives", help="Folder of query-like photos of things NOT enrolled: their scores set the threshold."
    ),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Estimate the open-set threshold from the enrolled gallery and store it."""
    try:
        negative_files = iter_image_files(negatives) if negatives is not None else None
        if negatives is not None and not negative_files:
            raise InstrecError(f"no images under {negatives}")
        with _recognizer(home, sets) as recognizer, _progress(not as_json) as progress:
            task = progress.add_task("scoring probes", total=None)
            result = recognizer.calibrate(
                target_far, negatives=negative_files, progress=lambda n, total: progress.update(task, completed=n, total=total)
            )
    except InstrecError as error:
        _fail(error)
    table = Table("key", "value")
    for key, value in result.__dict__.items():
        _add_row(table, key, str(value))
    _emit({**result.__dict__, "summary": result.describe()}, as_json, table)
    if not as_json:
        console.print(escape(result.describe()))


@app.command("extract-local")
def extract_local(home: Optional[Path] = HomeOption, sets: Optional[list[str]] = SetOption, as_json: bool = JsonOption) -> None:
    """Extract local features for images enrolled while re-ranking was off, or before colour
    signatures were stored (from stored originals)."""
    try:
        with _recognizer(home, sets) as recognizer, _progress(not as_json) as progress:
            task = progress.add_task("local features", total=None)
            done = recognizer.extract_missing_local_features(
                lambda number, total: progress.update(task, completed=number, total=total)
            )
    except InstrecError as error:
        _fail(error)
    table = Table("images given local features")
    _add_row(table, str(done))
    _emit({"extracted": done}, as_json, table)


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

    try:
        config = _config(None, sets)
        files = [f for p in pool for f in (iter_image_files(p, recursive=True) if p.is_dir() else [p])]
        if not files:
            raise InstrecError(f"no images under {', '.join(map(str, pool))}")
        embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
        with _progress(not as_json) as progress:
            task = progress.add_task("embed pool", total=len(files))
            vectors, skipped = embed_pool(
                embedder, files, config.limits, lambda done, total: progress.update(task, completed=done)
            )
        for error in skipped:
            console.print(f"[yellow]skipped:[/yellow] {escape(str(error))}")
        whitening = fit_whitening(vectors, dims, power, shrinkage)
        saved = whitening.save(output)
    except InstrecError as error:
        _fail(error)
    result = {
        "file": str(saved),
        "pool": whitening.pool_size,
        "skipped": len(skipped),
        "dims": whitening.dims,
        "explained_variance": round(whitening.explained, 4),
        "power": power,
        "shrinkage": shrinkage,
    }
    table = Table("key", "value")
    for key, value in result.items():
        _add_row(table, key, str(value))
    _emit(result, as_json, table)


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

    try:
        if report_path is not None:  # before the evaluation, which can take long
            require_extra("report", "instrec evaluate --report")
        settings, shot_counts = settings_from_options(compare), parse_shots(shots)
        with _progress(not as_json) as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done)

            rows = run_compare(
                dataset,
                settings,
                shot_counts,
                base=_config(None, sets),
                unknown_fraction=unknown_fraction,
                seed=seed,
                progress=report,
            )
        if report_path is not None:
            console.print(f"report: {escape(str(write_report(rows, report_path)))}")
    except InstrecError as error:
        _fail(error)
    if len(rows) == 1:  # a single run keeps its flat result
        result = rows[0].run.summary
        table = Table("metric", "value")
        for key, value in result.items():
            if not isinstance(value, dict):
                _add_row(table, key, f"{value:.4f}" if isinstance(value, float) else str(value))
        _emit(result, as_json, table)
        return
    table = Table("setting", "shots", *(label for _, label in COLUMNS))
    for row in rows:
        _add_row(table, *table_cells(row))
    _emit({"dataset": str(dataset), "rows": [row.to_dict() for row in rows]}, as_json, table)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Default service.host (127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Default service.port (8000)."),
    workers: Optional[int] = typer.Option(None, help="Default service.workers (1)."),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
) -> None:
    """Serve the REST API and the web page."""
    try:
        require_extra("service", "instrec serve")
    except InstrecError as error:
        _fail(error)
    from instrec.service.app import run

    overrides = {
        k: v for k, v in {"service.host": host, "service.port": port, "service.workers": workers}.items() if v is not None
    }
    config = _config(home, sets).with_overrides(overrides)
    run(config)


@app.command()
def demo(
    home: Path = typer.Option(Path("instrec-demo"), "--home", help="Where the demo library is written."),
    sets: Optional[list[str]] = SetOption,
) -> None:
    """Enrol real photos shipped with scikit-image and recognise altered views of them."""
    from instrec.demo import run_demo

    try:
        run_demo(_config(home, sets), out)
    except InstrecError as error:
        _fail(error)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
