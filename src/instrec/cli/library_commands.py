"""The commands that enrol into, read and manage one library (``--home``, and ``--collection`` in it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from instrec.cli.common import (
    FAILED,
    PARTLY_FAILED,
    CollectionOption,
    HomeOption,
    JsonOption,
    SetOption,
    add_row,
    app,
    load_config,
    console,
    error_payload,
    opened,
    out,
    progress_bar,
    reported,
    show,
)
from instrec.errors import ImageError, InstrecError
from instrec.images import iter_image_files
from instrec.library import collection_home


@app.command()
def enroll(
    folder: Path = typer.Argument(..., help="One sub-folder per instance (folder name = instance id), its photos inside."),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
    ray: bool = typer.Option(False, "--ray", help="Embed on Ray workers (the ray extra); a local Ray unless --ray-address."),
    ray_address: Optional[str] = typer.Option(None, help="A Ray cluster to embed on (with --ray), e.g. ray://head:10001."),
    ray_workers: Optional[int] = typer.Option(None, min=1, help="Ray actors (with --ray; default: one per CPU)."),
) -> None:
    """Enrol a folder of instances. Re-running adds only new images; bad files are skipped and listed.

    Exits 1 when some files were skipped, 2 when no image could be enrolled. The 'unknown'
    threshold is not re-measured here: `instrec calibrate` does that, and `instrec serve` does it by
    itself once the gallery has changed materially."""
    with reported(as_json):
        with opened(home, sets, collection, create=True) as recognizer, progress_bar(not as_json) as progress:
            task = progress.add_task("enrolling", total=None)

            def advance(n: int, total: int, name: str) -> None:
                progress.update(task, completed=n, total=total, description=escape(name))

            if ray or ray_address:
                from instrec.ray_ingest import enroll_folder_on_ray

                report = enroll_folder_on_ray(recognizer, folder, address=ray_address, workers=ray_workers, progress=advance)
            else:
                report = recognizer.enroll_folder(folder, progress=advance)
            calibration, stale = recognizer.calibration, recognizer.stats()["calibration_stale"]
        if report.images_added + report.duplicates == 0 and not report.errors:
            raise InstrecError(f"no images under {folder}/<instance id>/")
    payload = {
        **report.to_dict(),
        "threshold": calibration.threshold,
        "calibration": calibration.source,
        "calibration_stale": stale,
    }
    for skipped in report.errors:
        console.print(f"[yellow]skipped[/yellow] {escape(str(skipped))}")
    if as_json:
        show(payload, True)
    else:
        out.print(
            f"enrolled {report.images_added} images of {report.instances} instances "
            f"({report.duplicates} already there) in {report.seconds:.1f} s",
            highlight=False,
        )
        out.print(
            f"unknown threshold: {calibration.threshold:.3f} ({escape(calibration.source)})"
            + ("; the gallery has changed since: run `instrec calibrate`" if stale else ""),
            highlight=False,
        )
    if report.errors:
        raise typer.Exit(FAILED if report.images_added + report.duplicates == 0 else PARTLY_FAILED)


@app.command()
def recognize(
    images: list[Path] = typer.Argument(..., help="Query image(s)."),
    k: int = typer.Option(5, "-k", help="How many instances to list."),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Top-k instances for each image, or 'unknown' when nothing is close enough.

    A file that cannot be read is reported and the others are answered; the exit code is then 1."""
    results: list[dict[str, Any]] = []
    with reported(as_json), opened(home, sets, collection, one_off=True) as recognizer:
        for path in images:
            try:
                faces = recognizer.recognize_faces(path, k=k) if recognizer.config.embeds_faces else None
                result = faces[0] if faces else recognizer.recognize(path, k=k)
            except ImageError as error:
                results.append({"image": str(path), "error": error_payload(error)})
                if not as_json:
                    console.print(f"[red]error:[/red] {escape(str(error))}")
                continue
            # a faces library: the largest face's answer, and every face's (with its box) under "faces"
            answer = {"image": str(path), **result.to_dict()}
            results.append(answer if faces is None else {**answer, "faces": [f.to_dict() for f in faces if not f.no_face]})
            if not as_json:
                for face in faces or [result]:
                    _print_recognition(path, face)
    if as_json:
        show({"results": results}, True)
    if any("error" in result for result in results):
        raise typer.Exit(PARTLY_FAILED if len(results) > sum("error" in result for result in results) else FAILED)


def _print_recognition(path: Path, result: Any) -> None:
    if result.no_face:
        out.print(f"{escape(str(path))}: [bold yellow]no face found[/bold yellow]")
        return
    verdict = "[bold red]unknown[/bold red]" if result.unknown else f"[bold green]{escape(result.matches[0].label)}[/bold green]"
    box = "" if result.box is None else f"  face at {result.box.left},{result.box.top}-{result.box.right},{result.box.bottom}"
    out.print(f"{escape(str(path))}: {verdict}{box}  ({result.timing_ms['total']:.0f} ms)")
    table = Table("rank", "instance", "label", "score", "confidence")
    for rank, match in enumerate(result.matches, 1):
        add_row(table, str(rank), match.instance_id, match.label, f"{match.score:.3f}", f"{match.confidence:.2f}")
    out.print(table)


@app.command()
def remove(
    instance_id: str = typer.Argument(...),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove an instance with its images and vectors."""
    with reported(as_json), opened(home, sets, collection) as recognizer:
        recognizer.remove(instance_id)
    if as_json:
        show({"removed": instance_id}, True)
    else:
        out.print(f"removed {escape(instance_id)}", highlight=False)


@app.command("list")
def list_instances(
    search: Optional[str] = typer.Option(None, help="Only labels/ids containing this text."),
    limit: int = typer.Option(100),
    offset: int = typer.Option(0),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """List enrolled instances."""
    with reported(as_json), opened(home, sets, collection) as recognizer:
        items = recognizer.gallery.list(offset=offset, limit=limit, search=search)
        total = recognizer.gallery.count(search)
    table = Table("id", "label", "images", "metadata")
    for item in items:
        add_row(table, item.id, item.label, str(item.image_count), json.dumps(item.metadata))
    show({"total": total, "instances": [i.to_dict() for i in items]}, as_json, table)


@app.command()
def stats(
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Counts, index type, descriptor and threshold of the library."""
    with reported(as_json), opened(home, sets, collection) as recognizer:
        payload = recognizer.stats()
    show(payload, as_json)


@app.command()
def calibrate(
    target_far: Optional[float] = typer.Option(None, help="False-accept rate to aim for (default decision.target_far)."),
    negatives: Optional[Path] = typer.Option(
        None, "--negatives", help="Folder of query-like photos of things NOT enrolled: their scores set the threshold."
    ),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Estimate the open-set threshold from the enrolled gallery and store it."""
    with reported(as_json):
        negative_files = iter_image_files(negatives) if negatives is not None else None
        if negatives is not None and not negative_files:
            raise InstrecError(f"no images under {negatives}")
        with opened(home, sets, collection) as recognizer, progress_bar(not as_json) as progress:
            task = progress.add_task("scoring probes", total=None)
            result = recognizer.calibrate(
                target_far, negatives=negative_files, progress=lambda n, total: progress.update(task, completed=n, total=total)
            )
    show({**result.__dict__, "summary": result.describe()}, as_json)


@app.command("extract-local")
def extract_local(
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Extract local features for images enrolled while re-ranking was off, or before colour
    signatures were stored (from stored originals)."""
    with reported(as_json), opened(home, sets, collection) as recognizer, progress_bar(not as_json) as progress:
        task = progress.add_task("local features", total=None)
        done = recognizer.extract_missing_local_features(
            lambda number, total: progress.update(task, completed=number, total=total)
        )
    show({"extracted": done}, as_json)


@app.command()
def reindex(
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Rebuild the indexes from the catalog (the truth): after changing index.backend, or to repair a
    vector store, e.g. ``--set index.backend=milvus``."""
    with reported(as_json), opened(home, sets, collection) as recognizer:
        show(recognizer.reindex(), as_json)


@app.command()
def backup(
    archive: Path = typer.Argument(..., help="The tar file to write."),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Back up the catalog and the original images into one tar file; safe while the library is in use.

    The indexes are left out: the restored library rebuilds them when first opened."""
    from instrec.library.backup import backup as write_backup

    with reported(as_json):
        config = load_config(home, sets, collection)
        if config.catalog.url is not None:
            raise InstrecError(
                "instrec backup copies a SQLite catalog and its originals: back up a PostgreSQL one "
                "(catalog.url), which holds the originals too, with pg_dump"
            )
        report = write_backup(collection_home(config.home, config.collection), archive)
    _say_without_originals(report.without_originals)
    show({"archive": str(archive), **report.to_dict()}, as_json)


@app.command()
def restore(
    archive: Path = typer.Argument(..., help="A tar file written by `instrec backup`."),
    home: Optional[Path] = HomeOption,
    collection: Optional[str] = CollectionOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Restore a backup into a new (or empty) --home."""
    from instrec.library.backup import restore as read_backup

    with reported(as_json):
        config = load_config(home, sets, collection)
        target = collection_home(config.home, config.collection)
        report = read_backup(archive, target)
    _say_without_originals(report.without_originals)
    show({"home": str(target), **report.to_dict()}, as_json)


def _say_without_originals(count: int) -> None:
    if count:
        console.print(
            f"[yellow]note:[/yellow] {count} images were enrolled without keeping their photo (faces.keep_originals "
            "off): the restored library recognises them, but cannot re-embed them or show them"
        )
