"""API keys: read-only keys (``service.api_keys``) and admin keys (``service.admin_keys``).

A key comes in the ``X-API-Key`` header or as ``Authorization: Bearer <key>``. Reading (listing,
thumbnails, recognising, stats) needs a read or an admin key; writing needs an admin key. Auth is
on unless ``service.auth=false`` is set explicitly; on with no key configured, the service refuses
to start rather than run open by accident.

An entry ``KEY@shoes+bags`` limits the key to those collections (``default`` names the home's own):
elsewhere, ``/v1/...`` included, it gets 403. ``@`` and ``+`` because commas already separate the
keys of a setting and base64 keys may end in ``=``; a key listed more than once gets the best role
each entry gives it in each collection.

Requests under ``/v1/`` without a valid key are refused by :class:`AuthGate` before their body is
read, so an anonymous client cannot make the server parse uploads; the per-route dependencies
then check the role (401 no/unknown key, 403 read key on a write).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Literal, Mapping

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from instrec.config import COLLECTION_PATTERN, DEFAULT_COLLECTION, ServiceConfig
from instrec.errors import ConfigError
from instrec.service.errors import ApiError, error_response

Role = Literal["read", "admin"]
PROTECTED_PREFIX = "/v1/"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="instrec", charset="UTF-8"'}

# Declared for the OpenAPI document (the "Authorize" button in /docs); checked in ``require``.
_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="A read-only or admin API key.")
_bearer_scheme = HTTPBearer(auto_error=False, description="The same key as `Authorization: Bearer <key>`.")


@dataclass(frozen=True)
class KeyEntry:
    role: Role
    secret: bytes
    collections: frozenset[str] | None  # None: every collection

    @classmethod
    def parse(cls, role: Role, entry: str) -> "KeyEntry":
        """``KEY`` or ``KEY@name+name``; :class:`ConfigError` for a collection no name can be."""
        secret, limited, names = entry.rpartition("@") if "@" in entry else (entry, "", "")
        collections = frozenset(n.strip() for n in names.split("+")) if limited else None
        bad = sorted(n for n in collections or () if not re.fullmatch(COLLECTION_PATTERN, n))
        if not secret or bad:
            raise ConfigError(f"an API key entry is KEY or KEY@collection+collection; cannot name a collection: {bad}")
        return cls(role, secret.encode(), collections)

    def covers(self, collection: str | None) -> bool:
        return self.collections is None or collection is None or collection in self.collections


@dataclass(frozen=True)
class KeyRing:
    enabled: bool
    read_keys: tuple[str, ...]
    admin_keys: tuple[str, ...]
    entries: tuple[KeyEntry, ...] = field(init=False)

    def __post_init__(self) -> None:
        parsed = [KeyEntry.parse("read", k) for k in self.read_keys] + [KeyEntry.parse("admin", k) for k in self.admin_keys]
        object.__setattr__(self, "entries", tuple(parsed))

    @classmethod
    def from_config(cls, service: ServiceConfig) -> "KeyRing":
        check_auth_config(service)
        return cls(bool(service.auth), _stripped(service.api_keys), _stripped(service.admin_keys))

    def _matching(self, key: str | None) -> list[KeyEntry]:
        """The entries of ``key``. Compares in constant time against every entry."""
        if not key:
            return []
        given = key.encode("utf-8", "surrogateescape")
        return [entry for entry in self.entries if hmac.compare_digest(given, entry.secret)]

    def role(self, key: str | None, collection: str | None = None) -> Role | None:
        """The role a key grants in ``collection`` (None: in some collection), or None."""
        roles = {entry.role for entry in self._matching(key) if entry.covers(collection)}
        return "admin" if "admin" in roles else "read" if "read" in roles else None

    def collections(self, key: str | None) -> frozenset[str] | None:
        """The collections a key reaches (None: all of them)."""
        limits = [entry.collections for entry in self._matching(key)]
        return None if None in limits else frozenset().union(*(c for c in limits if c is not None))


def _stripped(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k.strip() for k in keys if k.strip())


def check_auth_config(service: ServiceConfig) -> None:
    """Refuse to serve with auth on and no key (never run open by accident), or with a key entry that
    names no collection."""
    KeyRing(False, _stripped(service.api_keys), _stripped(service.admin_keys))  # parses every entry
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


def allowed_collections(request: Request) -> frozenset[str] | None:
    """The collections the request's key reaches (None: all, as without auth)."""
    keys = _keyring(request)
    return keys.collections(key_from_headers(request.headers)) if keys.enabled else None


def require(role: Role, *, scoped: bool = True):
    """A dependency: the request carries a key of ``role`` (admin keys may also read) in the request's
    collection (its path's ``{collection}``, else the default one), unless not ``scoped``."""

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
        if keys.role(key) is None:
            raise ApiError(401, "invalid_api_key", "the API key is not valid", _CHALLENGE)
        collection = request.path_params.get("collection", DEFAULT_COLLECTION) if scoped else None
        granted = keys.role(key, collection)
        if granted is None:
            raise ApiError(403, "forbidden", f"this API key is limited to other collections than {collection!r}")
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
