"""API-key authentication (`Authorization: Bearer <key>`); keys are stored only as hashes."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from appliance.errors import AuthenticationFailed

_SCHEME = "bearer "


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith(_SCHEME) or not header[len(_SCHEME) :].strip():
        raise AuthenticationFailed("missing API key: send `Authorization: Bearer <key>`")
    presented = header[len(_SCHEME) :].strip()
    name = await connection.app.state.resources.registry.authenticate(presented)
    if name is None:
        raise AuthenticationFailed("the API key is not valid (unknown or revoked)")
    connection.state.api_key_name = name
