"""API keys: read-only keys (``service.api_keys``) and admin keys (``service.admin_keys``).

A key comes in the ``X-API-Key`` header or as ``Authorization: Bearer <key>``. Reading (listing,
thumbnails, recognising, stats) needs a read or an admin key; writing needs an admin key. Auth is
on unless ``service.auth=false`` is set explicitly; on with no key configured, the service refuses
to start rather than run open by accident.

Requests under ``/v1/`` without a valid key are refused by :class:`AuthGate` before their body is
read, so an anonymous client cannot make the server parse uploads; the per-route dependencies
then check the role (401 no/unknown key, 403 read key on a write).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal, Mapping

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from instrec.config import ServiceConfig
from instrec.errors import ConfigError
from instrec.service.errors import ApiError, error_response

Role = Literal["read", "admin"]
PROTECTED_PREFIX = "/v1/"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="instrec", charset="UTF-8"'}

# Declared for the OpenAPI document (the "Authorize" button in /docs); checked in ``require``.
_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="A read-only or admin API key.")
_bearer_scheme = HTTPBearer(auto_error=False, description="The same key as `Authorization: Bearer <key>`.")


@dataclass(frozen=True)
class KeyRing:
    enabled: bool
    read_keys: tuple[str, ...]
    admin_keys: tuple[str, ...]

    @classmethod
    def from_config(cls, service: ServiceConfig) -> "KeyRing":
        check_auth_config(service)
        strip = lambda keys: tuple(k.strip() for k in keys if k.strip())  # noqa: E731
        return cls(bool(service.auth), strip(service.api_keys), strip(service.admin_keys))

    def role(self, key: str | None) -> Role | None:
        """The role a key grants, or None. Compares in constant time against every key."""
        if not key:
            return None
        given = key.encode("utf-8", "surrogateescape")
        admin = any(hmac.compare_digest(given, k.encode()) for k in self.admin_keys)
        read = any(hmac.compare_digest(given, k.encode()) for k in self.read_keys)
        return "admin" if admin else "read" if read else None


def check_auth_config(service: ServiceConfig) -> None:
    """Refuse to serve with auth on and no key: never run open by accident."""
    if service.auth and not any(k.strip() for k in (*service.api_keys, *service.admin_keys)):
        raise ConfigError(
            "service.auth is on but no API key is configured. Set admin keys (read-write) with "
            "INSTREC_SERVICE__ADMIN_KEYS=<key1,key2> or --set service.admin_keys=<key> (and read-only ones "
            "with service.api_keys), or disable auth explicitly for local use with --set service.auth=false."
        )


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    get = headers.get
    key = get("x-api-key")
    if key:
        return key.strip()
    authorization = get("authorization") or ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _keyring(request: Request) -> KeyRing:
    return request.app.state.service.keys


def require(role: Role):
    """A dependency: the request carries a key of ``role`` (admin keys may also read)."""

    async def check(
        request: Request,
        _header: str | None = Depends(_header_scheme),
        _bearer: HTTPAuthorizationCredentials | None = Depends(_bearer_scheme),
    ) -> Role | None:
        keys = _keyring(request)
        if not keys.enabled:
            return None
        key = key_from_headers(request.headers)
        if not key:
            raise ApiError(
                401, "missing_api_key", "an API key is required: send it as X-API-Key or Authorization: Bearer", _CHALLENGE
            )
        granted = keys.role(key)
        if granted is None:
            raise ApiError(401, "invalid_api_key", "the API key is not valid", _CHALLENGE)
        if role == "admin" and granted != "admin":
            raise ApiError(403, "forbidden", "this API key is read-only; this operation needs an admin key")
        return granted

    check.__name__ = f"require_{role}"
    return check


require_read = require("read")
require_admin = require("admin")


class AuthGate:
    """ASGI middleware: 401 for ``/v1/`` requests (and for the ``also`` paths, e.g. ``/metrics`` with
    ``service.metrics_auth``) without a valid key, before the body is read. Any valid key passes:
    both roles may read."""

    def __init__(self, app: ASGIApp, keys: KeyRing, also: frozenset[str] = frozenset()):
        self.app = app
        self.keys = keys
        self.also = also

    def _protects(self, path: str) -> bool:
        return path.startswith(PROTECTED_PREFIX) or path in self.also

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or not self._protects(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = key_from_headers(headers)
        if not key:
            response = error_response(
                401, "missing_api_key", "an API key is required: send it as X-API-Key or Authorization: Bearer", _CHALLENGE
            )
        elif self.keys.role(key) is None:
            response = error_response(401, "invalid_api_key", "the API key is not valid", _CHALLENGE)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
