"""A trained model directory: the projection (whitening file format) and a manifest of how it was made.

``descriptor.whitening=DIR`` loads the projection, so the descriptor's digest changes with it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from instrec.embedding.whitening import MODEL_PROJECTION, Whitening

MANIFEST = "manifest.json"
FORMAT = 1


def save_model(out: Path, projection: Whitening, manifest: dict[str, Any]) -> Path:
    """Write ``projection`` and ``manifest`` (plus format, dims and creation time) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    projection.save(out / MODEL_PROJECTION)
    record = {
        "format": FORMAT,
        **manifest,
        "dims": projection.dims,
        "projection_digest": projection.digest,
        "created": _now(),
    }
    _write(out, record)
    return out


def read_manifest(model: Path) -> dict[str, Any]:
    return json.loads((model / MANIFEST).read_text())


def record_export(model: Path, base: dict[str, Any], export: dict[str, Any]) -> None:
    """Set the manifest's ``export`` record; a directory without a manifest gets one that names
    ``base``, the untrained descriptor it holds."""
    manifest = read_manifest(model) if (model / MANIFEST).is_file() else {"format": FORMAT, "base": base, "method": "pretrained"}
    manifest["export"] = {**export, "created": _now()}
    _write(model, manifest)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(model: Path, manifest: dict[str, Any]) -> None:
    (model / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
