"""/docs and /redoc work offline: every script, style and icon they load comes from the app itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
ASSET = re.compile(r"""(?:src|href|spec-url|url)\s*[=:]\s*["']([^"']+)["']""")


def referenced(html: str) -> list[str]:
    return ASSET.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_outside(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.findall(r"https?://", html), "the docs page names an outside URL"
    assets = referenced(html)
    assert any(a.endswith(".js") for a in assets) and "/openapi.json" in assets, assets
    for asset in assets:
        assert not urlsplit(asset).netloc, asset
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        suffix = "." + asset.rsplit(".", 1)[-1]
        assert EXPECTED_TYPES[suffix] in answer.headers["content-type"], (asset, answer.headers["content-type"])
        assert len(answer.content) > 100, asset


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_forbid_outside_loads(client, page):
    """The UIs' own outside references (ReDoc's logo) are blocked by the browser, not fetched."""
    policy = client.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'" and directives["img-src"] == "'self' data:"
    assert "http" not in policy and "*" not in policy
