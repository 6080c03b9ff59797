"""Turning a ZATCA error answer into the appliance's ZATCA errors, keeping ZATCA's own codes.

ZATCA answers errors in many shapes (zatca-protocol.md 2, 3.1, 3.3, 3.4), all handled here:

    {"errors": null | ["text", ...] | [{"code", "message"}, ...]}
    {"requestID": -1, "dispositionMessage": "NOT_COMPLIANT", "errors": ["text", ...]}
    {"errorCode": "400", "errorCategory": "Invalid-CSR", "errorMessage": "..."}
    {"code": "Missing-ComplianceSteps", "message": "..."}
    {"category": "HTTP-Errors", "code": "500", "message": "..."}
    {"timestamp": ..., "status": 401, "error": "Unauthorized", "message": ""}
    plain text (406), HTML pages (proxies, load balancers), empty bodies

When ZATCA gives no code, the code says what the HTTP status means (`HTTP-401`,
`Unsupported-Version` for 406) so callers can still branch on it.
"""

from __future__ import annotations

import html
import re

import msgspec

from appliance.errors import ZatcaError, ZatcaMessage, ZatcaRejected, ZatcaUnavailable

# Bounds what an odd answer (an HTML page, a stack trace) can put into an error message.
_MAX_MESSAGE_CHARS = 500
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def fallback_code(status_code: int) -> str:
    return "Unsupported-Version" if status_code == 406 else f"HTTP-{status_code}"


def _clip(text: str) -> str:
    flat = _WHITESPACE.sub(" ", text).strip()
    return flat if len(flat) <= _MAX_MESSAGE_CHARS else flat[: _MAX_MESSAGE_CHARS - 1] + "…"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, bool | int | float):
        return str(value)
    return _clip(msgspec.json.encode(value).decode())


def _message_from_entry(entry: dict[str, object], fallback: str) -> ZatcaMessage | None:
    code = _text(entry.get("code")) or _text(entry.get("category"))
    message = _text(entry.get("message")) or _text(entry.get("error"))
    if not code and not message:
        return None
    return ZatcaMessage(code or fallback, message)


def _messages_from_errors_list(document: dict[str, object], fallback: str) -> list[ZatcaMessage]:
    errors = document.get("errors")
    if isinstance(errors, dict):
        errors = [errors]
    if not isinstance(errors, list):
        return []
    # Bare strings carry no code; the NOT_COMPLIANT disposition beside them is the best one there is.
    list_code = _text(document.get("dispositionMessage")) or fallback
    messages: list[ZatcaMessage] = []
    for item in errors:
        if isinstance(item, dict):
            entry = _message_from_entry(item, fallback)
            if entry is not None:
                messages.append(entry)
        elif item is not None and _text(item):
            messages.append(ZatcaMessage(list_code, _text(item)))
    return messages


def _messages_from_object(document: dict[str, object], fallback: str) -> list[ZatcaMessage]:
    messages = _messages_from_errors_list(document, fallback)
    if messages:
        return messages
    if "errorCategory" in document or "errorMessage" in document:
        # errorCode only echoes the HTTP status; the category is the meaningful code (`Invalid-CSR`).
        code = _text(document.get("errorCategory")) or _text(document.get("errorCode")) or fallback
        return [ZatcaMessage(code, _text(document.get("errorMessage")))]
    entry = _message_from_entry(document, fallback)
    if entry is not None:
        return [entry]
    disposition = _text(document.get("dispositionMessage"))
    return [ZatcaMessage(disposition, "")] if disposition else []


def _message_from_text(text: str, content_type: str) -> str:
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        title = _HTML_TITLE.search(text)
        if title and title.group(1).strip():
            return f"HTML page: {_clip(html.unescape(title.group(1)))}"
        return "HTML page without a title"
    return _clip(text)


def messages_from_error_body(status_code: int, body: bytes, content_type: str = "") -> list[ZatcaMessage]:
    """Every message in an error answer; never empty."""
    fallback = fallback_code(status_code)
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return [ZatcaMessage(fallback, f"HTTP {status_code} with an empty body")]
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return [ZatcaMessage(fallback, _message_from_text(text, content_type))]
    messages: list[ZatcaMessage] = []
    if isinstance(document, dict):
        messages = _messages_from_object(document, fallback)
    elif isinstance(document, list):
        messages = _messages_from_errors_list({"errors": document}, fallback)
    elif isinstance(document, str) and document.strip():
        messages = [ZatcaMessage(fallback, _clip(document))]
    return messages or [ZatcaMessage(fallback, f"HTTP {status_code} without details")]


def summarise(messages: list[ZatcaMessage]) -> str:
    return "; ".join(f"{m.code}: {m.message}" if m.message else m.code for m in messages)


def error_for_status(endpoint: str, status_code: int, body: bytes, content_type: str = "") -> ZatcaError:
    """The error a non-success answer stands for: 4xx rejected, 5xx server error, else bad response."""
    messages = messages_from_error_body(status_code, body, content_type)
    if 400 <= status_code < 500:
        return ZatcaRejected(endpoint, status_code, messages)
    if status_code >= 500:
        return ZatcaUnavailable(endpoint, "server-error", summarise(messages), status_code)
    return ZatcaUnavailable(
        endpoint, "bad-response", f"unexpected HTTP {status_code}: {summarise(messages)}", status_code
    )
