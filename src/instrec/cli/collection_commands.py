"""The commands over the collections of a home: list them, delete one (enrolling creates one)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from instrec.cli.common import HomeOption, JsonOption, SetOption, add_row, app, load_config, out, reported, show
from instrec.library import collection_home, delete_collection, list_collections


@app.command()
def collections(home: Optional[Path] = HomeOption, sets: Optional[list[str]] = SetOption, as_json: bool = JsonOption) -> None:
    """List the collections of the home that hold a library ('default' is the home itself).

    `instrec enroll FOLDER --collection NAME` creates one; every command takes --collection."""
    with reported(as_json):
        config = load_config(home, sets)
        names = list_collections(config.home, config.catalog.url)
    table = Table("collection", "folder")
    for name in names:
        add_row(table, name, str(collection_home(config.home, name)))
    show({"home": str(config.home), "collections": names}, as_json, table)


@app.command("delete-collection")
def delete_collection_command(
    name: str = typer.Argument(..., help="The collection to delete, with everything enrolled in it."),
    home: Optional[Path] = HomeOption,
    sets: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete a collection and its folder. Stop a server using the home first: it keeps collections open."""
    with reported(as_json):
        config = load_config(home, sets)
        delete_collection(config.home, name, config.catalog.url)
    if as_json:
        show({"deleted": name}, True)
    else:
        out.print(f"deleted collection {escape(name)}", highlight=False)
