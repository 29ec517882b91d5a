"""What every command shares: the app, its options, the two consoles and the output conventions.

Results go to stdout and progress, warnings and errors to stderr, so ``instrec ... > out`` keeps
only the answer. ``--json`` prints one object of the same shape whatever the count, errors
included (``{"error": {"code", "message"}}`` on stdout). Exit codes: 0 when everything worked,
1 when some inputs failed and the rest were answered, 2 when the command failed.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from instrec import __version__
from instrec.config import DEFAULT_COLLECTION, Config, parse_assignments
from instrec.errors import InstrecError, NoLibraryError, error_code

PARTLY_FAILED = 1
FAILED = 2

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Recognise specific instances from a few shots each.")
console = Console(stderr=True)
out = Console()

HomeOption = typer.Option(None, "--home", help="Library folder (default ./instrec-data or $INSTREC_HOME).")
CollectionOption = typer.Option(
    None, "--collection", help="A collection of the home (default: the home itself, or $INSTREC_COLLECTION)."
)
SetOption = typer.Option(None, "--set", help="Override a setting, e.g. --set index.backend=flat (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"instrec {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version."),
) -> None:
    """Recognise specific instances from a few shots each."""


def load_config(home: Optional[Path], sets: Optional[list[str]], collection: Optional[str] = None) -> Config:
    overrides = parse_assignments(sets)
    return Config.load(home=home, overrides={**overrides, "collection": collection} if collection else overrides)


@contextmanager
def opened(
    home: Optional[Path],
    sets: Optional[list[str]],
    collection: Optional[str] = None,
    *,
    create: bool = False,
    one_off: bool = False,
) -> Iterator[Any]:
    """The library's recognizer. Only ``create`` commands (enrol) may start a library (or a collection)
    where there is none: elsewhere a mistyped ``--home`` would answer from a new, empty one. A ``one_off``
    command (a few queries, then exit) matches keypoints in float32 where "auto" would pick bfloat16: that
    needs torch, and importing it costs a new process more than bfloat16 saves on a few queries."""
    from instrec.library import collection_exists
    from instrec.recognizer import Recognizer

    config = load_config(home, sets, collection)
    if one_off and config.tuning.rerank.match_precision == "auto":
        config = config.with_overrides({"tuning.rerank.match_precision": "float32"})
    # A PostgreSQL catalog (catalog.url) is named explicitly: its default collection is made by whoever
    # opens it first (a new replica's home starts empty); another collection must be there already.
    url = config.catalog.url
    named = url is None or config.collection != DEFAULT_COLLECTION
    if not create and named and not collection_exists(config.home, config.collection, url):
        raise NoLibraryError(_no_library(config))
    with Recognizer(config) as recognizer:
        yield recognizer


def _no_library(config: Config) -> str:
    if config.collection == DEFAULT_COLLECTION:
        return (
            f"no library at {config.home}: check --home (or $INSTREC_HOME), or enrol into it first "
            f"(instrec enroll FOLDER --home {config.home})"
        )
    return (
        f"no collection {config.collection!r} in {config.home}: `instrec collections --home {config.home}` lists "
        f"them; enrolling into a collection creates it (instrec enroll FOLDER --collection {config.collection})"
    )


@contextmanager
def reported(as_json: bool) -> Iterator[None]:
    """Run a command's body: an :class:`InstrecError` ends it with its message and exit code 2."""
    try:
        yield
    except InstrecError as error:
        fail(error, as_json)


def error_payload(error: InstrecError) -> dict[str, str]:
    return {"code": error_code(error), "message": str(error)}


def fail(error: InstrecError, as_json: bool = False) -> NoReturn:
    if as_json:
        emit({"error": error_payload(error)})
    else:
        console.print(f"[red]error:[/red] {escape(str(error))}")
    raise typer.Exit(code=FAILED)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
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


def stages(progress: Progress) -> Callable[[str, int, int], None]:
    """``stage(name, done, total)``: one bar per named stage of a long job, made when it first reports."""
    tasks: dict[str, Any] = {}

    def stage(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done)

    return stage


def emit(payload: Mapping[str, Any]) -> None:
    out.print_json(json.dumps(payload, default=str))


def show(payload: Mapping[str, Any], as_json: bool, table: Table | None = None) -> None:
    """``payload`` as JSON, or else ``table`` (by default the payload's keys and values)."""
    if as_json:
        emit(payload)
    else:
        out.print(table if table is not None else key_value_table(payload))


def add_row(table: Table, *cells: str) -> None:
    """A row of data, shown as it is: ids, labels and paths are the user's, never rich markup."""
    table.add_row(*(escape(cell) for cell in cells))


def key_value_table(payload: Mapping[str, Any]) -> Table:
    """One row per value; nested mappings flatten into dotted keys, floats show 4 significant digits."""
    table = Table("key", "value")
    for key, value in flattened(payload).items():
        add_row(table, key, cell(value))
    return table


def flattened(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, Mapping) and value:
            rows.update(flattened(value, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = value
    return rows


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(item) for item in value)
    return "" if value is None else str(value)
