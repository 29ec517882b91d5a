"""Helpers shared by the service tests (imported by the test modules and conftest)."""

from __future__ import annotations

import io
import warnings
from typing import Any

from PIL import Image

with warnings.catch_warnings():  # starlette prefers httpx2; httpx is what the dev extra installs
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: F401

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins", "horse")
ADMIN_KEY = "admin-key-for-tests"
READ_KEY = "read-key-for-tests"


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def enrol(
    client: TestClient,
    label: str,
    *images: bytes,
    metadata: str | None = None,
    instance_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data = {"label": label}
    if metadata is not None:
        data["metadata"] = metadata
    if instance_id is not None:
        data["id"] = instance_id
    files = [("images", (f"{label[:20]}-{i}.jpg", image, "image/jpeg")) for i, image in enumerate(images)]
    return client.post("/v1/instances", data=data, files=files, headers=headers or {})


def recognize(client: TestClient, image: bytes, k: int | None = None, headers: dict[str, str] | None = None) -> Any:
    url = "/v1/recognize" + (f"?k={k}" if k else "")
    return client.post(url, files={"image": ("query.jpg", image, "image/jpeg")}, headers=headers or {})


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The stable error shape, with the expected status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "status"} <= set(error), error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"].replace("_", "").isalnum() and error["code"].islower()
    if code is not None:
        assert error["code"] == code, error
    return error


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (400 M pixels for 20000) in ~50 KB: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    block = row * 500
    body = b"".join(compressor.compress(block) for _ in range(side // 500))
    body += compressor.compress(row * (side % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def tiny_png() -> bytes:
    return png(Image.new("RGB", (8, 8), (200, 10, 10)))
