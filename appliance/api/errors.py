"""The one place where appliance errors become HTTP answers.

Every failure a client can see has the same body, `{"status": "Failed", "errorList": [...]}`,
including Litestar's own refusals (unknown route, wrong method, body too large) and anything
unexpected, which becomes a 500 with that body and a logged traceback, never a stack trace on
the wire.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_502_BAD_GATEWAY,
    HTTP_503_SERVICE_UNAVAILABLE,
    HTTP_504_GATEWAY_TIMEOUT,
)

from appliance.api.schemas import ErrorBody, ErrorItem
from appliance.errors import (
    ApplianceError,
    AuthenticationFailed,
    Conflict,
    Forbidden,
    HsmError,
    InvoiceDocumentError,
    KeyNotFound,
    NotFound,
    RateLimited,
    StorageError,
    UnsupportedMediaType,
    ValidationFailed,
    ZatcaRejected,
    ZatcaTimeout,
    ZatcaUnavailable,
)

log = logging.getLogger("appliance.api")


def status_and_items(exc: ApplianceError) -> tuple[int, list[ErrorItem]]:
    """HTTP status and error items for an appliance error (pure, unit-tested)."""
    if isinstance(exc, ValidationFailed):
        return HTTP_400_BAD_REQUEST, [
            ErrorItem(code=p.code, message=p.message, field=p.field, source="Appliance") for p in exc.problems
        ]
    if isinstance(exc, ZatcaRejected):
        items = [
            ErrorItem(code=m.code or f"HTTP-{exc.status_code}", message=m.message, source="ZATCA")
            for m in exc.messages
        ] or [ErrorItem(code=f"HTTP-{exc.status_code}", message=str(exc), source="ZATCA")]
        return HTTP_400_BAD_REQUEST, items
    status = next(
        (code for kind, code in _STATUS_BY_KIND if isinstance(exc, kind)), HTTP_500_INTERNAL_SERVER_ERROR
    )
    item = ErrorItem(code=exc.code, message=str(exc), source="Appliance")
    if isinstance(exc, Conflict):
        # The message names the existing deviceId (storage phrases it so).
        item = ErrorItem(code=exc.code, message=str(exc), source="Appliance")
    return status, [item]


# First match wins, so a subclass with its own status stands before its base.
_STATUS_BY_KIND: tuple[tuple[type[ApplianceError], int], ...] = (
    (AuthenticationFailed, HTTP_401_UNAUTHORIZED),
    (InvoiceDocumentError, HTTP_400_BAD_REQUEST),
    (Forbidden, HTTP_403_FORBIDDEN),
    (RateLimited, HTTP_429_TOO_MANY_REQUESTS),
    (UnsupportedMediaType, HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (NotFound, HTTP_404_NOT_FOUND),
    (KeyNotFound, HTTP_404_NOT_FOUND),
    (Conflict, HTTP_409_CONFLICT),
    (ZatcaTimeout, HTTP_504_GATEWAY_TIMEOUT),
    (ZatcaUnavailable, HTTP_502_BAD_GATEWAY),
    (HsmError, HTTP_503_SERVICE_UNAVAILABLE),
    (StorageError, HTTP_503_SERVICE_UNAVAILABLE),
)


def _render(
    status: int, items: list[ErrorItem], headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(errorList=items), status_code=status, media_type=MediaType.JSON, headers=headers
    )


def handle_appliance_error(request: Request[Any, Any, Any], exc: ApplianceError) -> Response[ErrorBody]:
    status, items = status_and_items(exc)
    log.info(
        "request refused",
        extra={"status": status, "codes": [item.code for item in items], "path": request.url.path},
    )
    headers = (
        {"WWW-Authenticate": 'Bearer realm="zatca-appliance"'} if status == HTTP_401_UNAUTHORIZED else None
    )
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    return _render(status, items, headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    """Litestar's own refusals (404 route, 405, 413, malformed parameters) in our body shape."""
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else "request refused"
    items = [ErrorItem(code=f"HTTP-{exc.status_code}", message=message, source="Appliance")]
    extra = getattr(exc, "extra", None)
    if isinstance(extra, list):
        items = [
            ErrorItem(
                code=f"HTTP-{exc.status_code}",
                message=str(entry.get("message", message)),
                field=str(entry["key"]) if entry.get("key") else None,
                source="Appliance",
            )
            for entry in extra
            if isinstance(entry, dict)
        ] or items
    return _render(exc.status_code, items, exc.headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
    return _render(
        HTTP_500_INTERNAL_SERVER_ERROR,
        [
            ErrorItem(
                code="Internal-Error",
                message="the appliance failed unexpectedly; see its log",
                source="Appliance",
            )
        ],
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ApplianceError: handle_appliance_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
