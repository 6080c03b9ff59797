"""API-key authentication (`Authorization: Bearer <key>`) and authorisation by role.

`require_api_key` (on every `/v1` controller) finds the key and leaves its `ApiKeyScope` on the
connection; `require_role(role)` on a handler refuses (403) a key without that role. Which
devices a key may see (its VATs) is decided by the handler on the record it loads, so a device
outside the scope is answered as absent (404), never as forbidden.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from appliance.domain import ApiKeyRole
from appliance.errors import AuthenticationFailed, Forbidden
from appliance.storage import ApiKeyScope

_SCHEME = "bearer "


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith(_SCHEME) or not header[len(_SCHEME) :].strip():
        raise AuthenticationFailed("missing API key: send `Authorization: Bearer <key>`")
    presented = header[len(_SCHEME) :].strip()
    scope = await connection.app.state.resources.registry.authenticate_key(presented)
    if scope is None:
        raise AuthenticationFailed("the API key is not valid (unknown or revoked)")
    connection.state.api_key = scope


def api_key_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKeyScope:
    """The scope `require_api_key` found; only valid behind that guard."""
    scope = connection.state.get("api_key")
    if not isinstance(scope, ApiKeyScope):
        raise AuthenticationFailed("missing API key: send `Authorization: Bearer <key>`")
    return scope


def require_role(role: ApiKeyRole) -> Guard:
    """A guard refusing keys without `role` (`admin` holds every role)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not api_key_scope(connection).has_role(role):
            raise Forbidden(f"this API key does not have the `{role}` role")

    return guard
