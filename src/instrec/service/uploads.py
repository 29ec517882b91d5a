"""Reading uploaded images and form fields into plain values the engine accepts.

Uploads become ``bytes`` in memory (the total is already capped by :mod:`instrec.service.limits`);
the client's filename is only ever echoed back, never used as a path.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from fastapi import Request, UploadFile
from starlette.datastructures import UploadFile as StarletteUploadFile

from instrec.catalog import MAX_ID_LENGTH, MAX_LABEL_LENGTH, validate_instance_id, validate_label
from instrec.catalog.records import ID_PATTERN
from instrec.errors import InstrecError
from instrec.service.errors import ApiError

MAX_IMAGES_PER_ENROLMENT = 3  # "1-3 photos per instance" per request
MAX_BATCH = 16
MAX_K = 50
MAX_METADATA_BYTES = 64 * 1024
RAW_IMAGE_TYPES = ("image/", "application/octet-stream")

# What the form fields must hold, for the OpenAPI schema (the checks themselves are in the parse_* below):
# a label with a visible character and no control character but tab; an id (blank: one is made up) with
# the spaces around it, which are dropped.
LABEL_PATTERN = r"^\s*[^\x00-\x08\x0a-\x1f]*[^\s\x00-\x1f][^\x00-\x08\x0a-\x1f]*\s*$"
FORM_ID_PATTERN = rf"^\s*{ID_PATTERN}?\s*$"
IMAGE = {"type": "string", "format": "binary", "description": "A JPEG, PNG, WebP, TIFF, GIF or BMP file."}


def multipart_body(properties: dict[str, Any], required: Sequence[str], description: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a multipart form: its fields, which are images, which a JSON object."""
    encoding = {
        name: {"contentType": "image/*" if schema is IMAGE or schema.get("items") is IMAGE else "application/json"}
        for name, schema in properties.items()
        if schema is IMAGE or schema.get("items") is IMAGE or schema.get("type") == "object"
    }
    form = {"type": "object", "required": list(required), "properties": properties}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"multipart/form-data": {"schema": form, "encoding": encoding}},
        }
    }


def display_name(upload: StarletteUploadFile, index: int) -> str:
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:120]
    return name or f"image {index + 1}"


async def read_uploads(uploads: Sequence[UploadFile | StarletteUploadFile], *, most: int, field: str) -> list[bytes]:
    if not uploads:
        raise ApiError(422, "missing_image", f"at least one image is required in the '{field}' field")
    if len(uploads) > most:
        raise ApiError(422, "too_many_images", f"at most {most} images per request, got {len(uploads)}")
    return [await upload.read() for upload in uploads]


def parse_label(label: str | None, *, required: bool) -> str | None:
    if label is None:
        if required:
            raise ApiError(422, "invalid_label", "a label is required")
        return None
    label = label.strip()
    if not label:
        raise ApiError(422, "invalid_label", "the label must not be empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise ApiError(422, "invalid_label", f"the label must be at most {MAX_LABEL_LENGTH} characters")
    try:
        return validate_label(label)
    except InstrecError as error:
        raise ApiError(422, "invalid_label", str(error)) from None


def parse_instance_id(instance_id: str | None) -> str | None:
    if instance_id is None or not instance_id.strip():
        return None
    if len(instance_id) > MAX_ID_LENGTH:
        raise ApiError(422, "invalid_id", f"an instance id must be at most {MAX_ID_LENGTH} characters")
    try:
        return validate_instance_id(instance_id.strip())
    except InstrecError as error:
        raise ApiError(422, "invalid_id", str(error)) from None


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """The ``metadata`` form field: a JSON object (or empty)."""
    if text is None or not text.strip():
        return None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise ApiError(422, "invalid_metadata", f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise ApiError(422, "invalid_metadata", f"metadata is not valid JSON: {error}") from None
    return check_metadata(value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON object that serialises back to strict JSON (no NaN/Infinity), within the size limit."""
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_metadata", 'metadata must be a JSON object, e.g. {"sku": "123"}')
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as error:
        raise ApiError(422, "invalid_metadata", f"metadata must be plain JSON: {error}") from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ApiError(422, "invalid_metadata", f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


def parse_k(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ApiError(422, "validation_error", f"k must be an integer between 1 and {MAX_K}") from None
    if not 1 <= k <= MAX_K:
        raise ApiError(422, "validation_error", f"k must be an integer between 1 and {MAX_K}")
    return k


async def read_single_image(request: Request) -> tuple[bytes, str | None, int | None]:
    """``POST /v1/recognize`` body: multipart (``image`` file, optional ``k``) or the raw image.

    Returns (image bytes, filename, k from the form).
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=4, max_fields=16)
        try:
            upload = form.get("image")
            if not isinstance(upload, StarletteUploadFile):
                raise ApiError(422, "missing_image", "multipart body needs a file field named 'image'")
            data = await upload.read()
            return data, display_name(upload, 0), parse_k(form.get("k"))
        finally:
            await form.close()
    if content_type.startswith(RAW_IMAGE_TYPES):
        return await request.body(), None, None
    shown = content_type or "none"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {shown!r} is not accepted: send multipart/form-data with an 'image' file field, "
        "or the image itself with Content-Type image/* or application/octet-stream",
    )
