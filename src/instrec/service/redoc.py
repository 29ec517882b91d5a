"""ReDoc served without any request elsewhere: its bundle shows Redocly's logo from a CDN, which
offline networks (and the docs' content policy) refuse, leaving an error in every visitor's console."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response

_BUNDLE = Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js"
_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_NO_IMAGE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="  # transparent pixel


@cache
def _bundle_without_cdn() -> str:
    return _BUNDLE.read_text(encoding="utf-8").replace(_CDN_LOGO, _NO_IMAGE)


def add_redoc(app: FastAPI, url: str, assets_url: str) -> None:
    """``url``: the page; ``assets_url``: where fastapi-offline serves its other docs files (favicon)."""
    bundle_url = f"{url}/redoc.standalone.js"

    @app.get(bundle_url, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(_bundle_without_cdn(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    @app.get(url, include_in_schema=False)
    async def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{bundle_url}",
            redoc_favicon_url=f"{root}{assets_url}/favicon.png",
            with_google_fonts=False,
        )
