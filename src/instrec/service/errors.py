"""One JSON error shape for every failure the service reports.

``{"error": {"code": "<stable_snake_case>", "message": "...", "status": <int>}}`` — for the
engine's typed errors, for our own checks, and for FastAPI/Starlette's built-in 404/405/422/500
(their handlers are overridden). Validation errors add ``error.details`` (a list of
``{"loc": [...], "message": "..."}``); nothing else ever varies.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Mapping

from fastapi import FastAPI, Request
from pydantic import BaseModel
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from instrec.errors import (
    ConfigError,
    DescriptorMismatchError,
    DuplicateInstanceError,
    ImageError,
    ImageTooLargeError,
    InstrecError,
    NotAnImageError,
    TooManyImagesError,
    UnknownCollectionError,
    UnknownImageError,
    UnknownInstanceError,
    error_code,
)

log = logging.getLogger(__name__)

# The HTTP status of an engine error, most specific first: the first class an error is an instance
# of decides. Its code is instrec.errors.error_code's, the CLI's vocabulary too.
ENGINE_STATUS: tuple[tuple[type[InstrecError], int], ...] = (
    (NotAnImageError, 415),
    (ImageTooLargeError, 413),
    (TooManyImagesError, 422),
    (ImageError, 400),
    (UnknownInstanceError, 404),
    (UnknownImageError, 404),
    (UnknownCollectionError, 404),
    (DuplicateInstanceError, 409),
    (DescriptorMismatchError, 500),
    (ConfigError, 500),
    (InstrecError, 422),
)

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "not_ready",
}


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str


class Error(BaseModel):
    code: str  # stable snake_case, e.g. "not_an_image"
    message: str
    status: int
    details: list[ErrorDetail] | None = None  # validation errors only


class ErrorBody(BaseModel):
    """What every error response carries (the schema of documented 4xx/5xx responses)."""

    error: Error


_MEANINGS = {
    400: "A bad image (corrupt, too small, too elongated) or request",
    401: "No or unknown API key",
    403: "The key may not do this (writes need an admin key; a key limited to collections reaches only those)",
    404: "No such instance, image or collection",
    409: "Conflict with the library's state",
    413: "Body or image too large (service.max_upload_bytes, limits.*)",
    415: "Not an image in a supported format, or an unsupported Content-Type",
    422: "Invalid parameters or form fields",
    429: "Over the key's rate limit (service.rate_limit_per_s): retry after Retry-After seconds",
    503: "Starting, stopping, or overloaded (service.max_queue, service.deadline_ms): retry after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` documenting these error statuses with the error envelope."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}


class ApiError(StarletteHTTPException):
    """An HTTP error with a stable machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(status_code=status, detail=message, headers=dict(headers) if headers else None)
        self.code = code
        self.message = message


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, **extra}}


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, **extra), status_code=status, headers=dict(headers) if headers else None
    )


def engine_error(error: InstrecError) -> tuple[int, str, str]:
    """(status, code, message) for an engine error; image errors name the upload, not a path."""
    status = next(status for cls, status in ENGINE_STATUS if isinstance(error, cls))  # InstrecError is last
    message = error.reason if isinstance(error, ImageError) else str(error)
    source = getattr(error, "source", None)
    if isinstance(error, ImageError) and source and not source.startswith("<"):
        message = f"{source}: {message}"
    return status, error_code(error), message


def error_dict(error: Exception) -> dict[str, Any]:
    """The ``{"error": ...}`` body for an exception (engine error or ApiError); used per batch item."""
    if isinstance(error, ApiError):
        return error_body(error.status_code, error.code, error.message)
    if isinstance(error, InstrecError):
        return error_body(*engine_error(error))
    return error_body(500, "internal_error", "internal error")


def _loc(loc: Any) -> list[Any]:
    return [part if isinstance(part, (str, int)) else str(part) for part in (loc or ())]


def _validation_message(details: list[dict[str, Any]]) -> str:
    parts = []
    for item in details[:3]:
        where = ".".join(str(p) for p in item["loc"] if p not in ("body", "query", "path", "header", "form"))
        parts.append(f"{where}: {item['message']}" if where else item["message"])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return "; ".join(parts) + more if parts else "invalid request"


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = getattr(exc, "code", None) or STATUS_CODES.get(status, f"http_{status}")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405 and message == "Method Not Allowed":
        message = f"{request.method} is not allowed on {request.url.path}"
    headers = getattr(exc, "headers", None)
    allowed = _documented_methods(request) if status == 405 else None
    if allowed:
        headers = {**(headers or {}), "Allow": allowed}
    return error_response(status, code, message, headers)


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _documented_methods(request: Request) -> str | None:
    """The Allow header of a path in the API schema: every method any route takes on it. Starlette's
    own names those of the first route matching the path only (GET, POST and DELETE on
    /v1/instances are three routes). None for a path the schema does not hold."""
    template = schema_path(request.app, request.url.path)
    if template is None:
        return None
    item = request.app.openapi()["paths"][template]
    return ", ".join(sorted(method.upper() for method in item if method in _METHODS))


def schema_path(app: Any, path: str) -> str | None:
    """The path template of the API schema that ``path`` falls under (``/v1/instances/{instance_id}``),
    or None. A route's own ``path`` lacks the prefix its router was included under."""
    return next((template for template, pattern in _patterns(tuple(app.openapi()["paths"])) if pattern.match(path)), None)


@functools.lru_cache(maxsize=4)
def _patterns(templates: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    return [(template, compile_path(template)[0]) for template in templates]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": _loc(e.get("loc")), "message": str(e.get("msg", "invalid"))} for e in exc.errors()]
    return error_response(422, "validation_error", _validation_message(details), details=details)


async def _engine_error(request: Request, exc: InstrecError) -> JSONResponse:
    status, code, message = engine_error(exc)
    if status >= 500:
        log.error("engine error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(status, code, message)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(InstrecError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
