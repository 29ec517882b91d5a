"""Request body limit, enforced while the body is read (Content-Length is a hint, not a promise).

A declared Content-Length over the limit is refused at once; otherwise the bytes are counted as
they arrive and reading stops with 413 the moment the limit is passed — before the whole upload
has been buffered or spooled anywhere.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from instrec.service.errors import ApiError, error_response


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(
            413, "payload_too_large", f"request body exceeds the upload limit of {limit} bytes (service.max_upload_bytes)"
        )


class BodyLimit:
    """ASGI middleware: at most ``limit`` body bytes per HTTP request, 413 otherwise."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            error = BodyTooLarge(limit)
            await error_response(413, error.code, error.message, {"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
