"""Several settings x shot counts evaluated in one go, the baseline always the first row.

A setting is a name plus ``section.key=value`` overrides applied on top of the base configuration
(defaults, environment, ``--set``), so any setting another part of the engine adds is comparable
without changes here, the profile's constants too (``tuning.rerank.ratio=0.7``). Written inline as
``"name: key=value, key=value"`` (a value may itself hold commas, e.g. ``service.api_keys=a,b``) or
as a JSON file ``{"name": {"key": value}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrec.config import Config
from instrec.errors import ConfigError
from instrec.evaluation.datasets import load_split
from instrec.evaluation.runner import Progress, Run, run

BASELINE = "baseline"
COLUMNS = (
    ("top1", "top-1"),
    ("top5", "top-5"),
    ("mrr", "MRR"),
    ("map", "mAP"),
    ("auroc", "AUROC"),
    ("tar_at_far_1pct", "TAR@FAR=1%"),
    ("ms_per_query", "ms/query"),
)
_NEXT_ASSIGNMENT = re.compile(r",\s*(?=[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\s*=)")  # a comma that starts "a.b="


@dataclass(frozen=True)
class Setting:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    setting: Setting
    shots: int
    run: Run

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting.name, "overrides": self.setting.overrides, **self.run.summary}


def parse_setting(text: str) -> Setting:
    """``"wide: tuning.rerank.shortlist=50, tuning.rerank.local_shortlist=50"`` -> :class:`Setting`."""
    name, sep, body = text.partition(":")
    if not sep or "=" in name:
        raise ConfigError(f"--compare expects 'name: section.key=value, ...', got {text!r}")
    overrides: dict[str, Any] = {}
    for assignment in _NEXT_ASSIGNMENT.split(body.strip()) if body.strip() else []:
        key, eq, value = assignment.partition("=")
        if not eq:
            raise ConfigError(f"--compare {name.strip()!r}: expected section.key=value, got {assignment!r}")
        overrides[key.strip()] = value.strip()
    return Setting(name.strip(), overrides)


def load_settings(path: str | Path) -> list[Setting]:
    """Named settings from a JSON file: ``{"name": {"section.key": value, ...}, ...}`` (file order kept)."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read settings file {path}: {error}") from None
    if not isinstance(payload, dict) or not all(isinstance(v, dict) for v in payload.values()):
        raise ConfigError(f'{path}: expected {{"name": {{"section.key": value}}}}')
    return [Setting(name, dict(overrides)) for name, overrides in payload.items()]


def settings_from_options(options: list[str] | None) -> list[Setting]:
    """The baseline, then each ``--compare`` value (inline setting, or a ``.json`` file of them)."""
    settings = [Setting(BASELINE)]
    for option in options or []:
        is_file = option.endswith(".json") and ":" not in option
        settings.extend(load_settings(option) if is_file else [parse_setting(option)])
    names = [s.name for s in settings]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"setting names must be unique ({BASELINE!r} is taken by the base): {', '.join(repeated)}")
    return settings


def parse_shots(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``."""
    try:
        shots = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--shots expects a number or a list like 1,2,3; got {text!r}") from None
    if not shots or min(shots) < 1:
        raise ConfigError("--shots must be at least 1")
    return list(dict.fromkeys(shots))


def compare(
    root: str | Path,
    settings: list[Setting],
    shots: list[int],
    *,
    base: Config,
    unknown_fraction: float = 0.0,
    seed: int = 0,
    progress: Progress | None = None,
    embedder: Any = None,
    calibrate: bool = True,
) -> list[Row]:
    """One evaluation per setting x shots. Every setting is checked before the first one runs;
    ``calibrate=False`` skips each gallery's calibration (ranking figures only).

    ``embedder`` (optional) serves the settings whose descriptor (a face profile's too) and runtime equal the base's; the
    others get their own, built once and shared by the settings that agree.
    """
    configs = [base.with_overrides(setting.overrides) for setting in settings]
    if load_split(root, shots[0], unknown_fraction, seed).layout == "gallery/queries":
        shots = shots[:1]  # the layout fixes the gallery: more shot counts would repeat the same run
    embedders = {_embedder_key(base): embedder} if embedder is not None else {}
    rows = []
    for setting, config in zip(settings, configs):
        key = _embedder_key(config)
        if key not in embedders:
            embedders[key] = _build_embedder(config)
        for count in shots:
            stage = _prefixed(progress, f"{setting.name} x{count}")
            rows.append(
                Row(
                    setting,
                    count,
                    run(
                        root,
                        shots=count,
                        unknown_fraction=unknown_fraction,
                        seed=seed,
                        config=config,
                        progress=stage,
                        embedder=embedders[key],
                        calibrate=calibrate,
                    ),
                )
            )
    return rows


def table_cells(row: Row) -> list[str]:
    """The row as printed: setting, shots, then :data:`COLUMNS` (3 decimals, ms with 1)."""
    cells = [row.setting.name, str(row.shots)]
    for key, _ in COLUMNS:
        value = row.run.summary.get(key)
        cells.append("-" if value is None else f"{value:.1f}" if key.startswith("ms") else f"{value:.3f}")
    return cells


def text_table(rows: list[Row]) -> str:
    """Plain-text table of :func:`table_cells` (for scripts and logs)."""
    header = ["setting", "shots", *(label for _, label in COLUMNS)]
    lines = [header, *(table_cells(row) for row in rows)]
    width = max(14, *(len(line[0]) for line in lines))
    return "\n".join(f"{line[0]:{width}} " + " ".join(f"{cell:>10}" for cell in line[1:]) for line in lines)


def _embedder_key(config: Config) -> tuple[Any, ...]:
    return (json.dumps(config.descriptor_key(), sort_keys=True), config.runtime)


def _build_embedder(config: Config) -> Any:
    from instrec.embedding.factory import create_embedder

    return create_embedder(config)


def _prefixed(progress: Progress | None, prefix: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{prefix} {stage}", done, total)
