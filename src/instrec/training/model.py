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
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    return out


def read_manifest(model: Path) -> dict[str, Any]:
    return json.loads((model / MANIFEST).read_text())
