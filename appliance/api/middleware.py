"""Request ids and the access log, as plain ASGI middleware (no body buffering)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from appliance.api.schemas import ErrorBody, ErrorItem
from appliance.logs import request_id_var

log = logging.getLogger("appliance.access")

# A caller's id is echoed into headers and logs, so only a safe, short alphabet is taken.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        http_scope: HTTPScope = scope
        presented = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"x-request-id"), ""
        )
        request_id = presented if _SAFE_REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex
        # API answers can carry a private key, a ZATCA secret or a CSID: no cache may keep them.
        no_store = http_scope["path"].startswith("/v1/") or http_scope["path"] == "/v1"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None
        completed = False
        disconnected = False

        async def receive_watching() -> ReceiveMessage:
            nonlocal disconnected
            message = await receive()
            # Only a disconnect before the answer was complete means the client never got it;
            # what the app sends afterwards (a 500 for a body cut short) reaches no one.
            if message["type"] == "http.disconnect" and not completed:
                disconnected = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, completed
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if no_store:
                    headers = [(name, value) for name, value in headers if name.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
            await send(message)

        try:
            await app(scope, receive_watching, send_with_id)
        finally:
            fields: dict[str, object] = {
                "method": http_scope["method"],
                "path": http_scope["path"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            if disconnected:
                log.info("client disconnected", extra=fields)
            else:
                log.info("request", extra={**fields, "status": 500 if status is None else status})
            request_id_var.reset(token)

    return middleware


# With server.ops_port these answer only there; /health/live stays on both (it costs nothing).
OPS_ONLY_PATHS = ("/metrics", "/health/ready")
OPS_PATHS = ("/metrics", "/health/")


def listener_split_middleware(ops_port: int) -> Callable[[ASGIApp], ASGIApp]:
    """Route by listener: operations paths on `ops_port` (loopback), the API on the main port."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                path = scope["path"]
                server = scope.get("server")
                on_ops = server is not None and server[1] == ops_port
                allowed = path.startswith(OPS_PATHS) if on_ops else not path.startswith(OPS_ONLY_PATHS)
                if not allowed:
                    await _not_found(send)
                    return
            await app(scope, receive, send)

        return middleware

    return factory


async def _not_found(send: Send) -> None:
    item = ErrorItem(code="HTTP-404", message="Not Found", source="Appliance")
    body = msgspec.json.encode(ErrorBody(errorList=[item]))
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
