"""benchmarks/RESULTS.md: one generated file of measured figures, one section per benchmark.

Each benchmark replaces its own section (between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``)
and leaves the others as they were, so the file always says which command produced which table and
when.
"""

from __future__ import annotations

import datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Measured results\n\nGenerated: each section is written by the benchmark named in it (`--results`); do not edit by hand.\n"
)


def write_section(
    name: str,
    command: str,
    lines: list[str],
    path: Path = RESULTS,
    machine: str = "the 2-core development machine",
    data: str = "../shared/data",
) -> None:
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    body = "\n".join(
        [
            begin,
            f"## {name}",
            "",
            f"`{command}`, {datetime.date.today().isoformat()}, on {machine}; data {data}.",
            "",
            *lines,
            end,
        ]
    )
    text = path.read_text() if path.exists() else HEADER
    if begin in text and end in text:
        text = text[: text.index(begin)] + body + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)
