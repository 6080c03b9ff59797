"""Strict JSON request bodies: JSON media type, one value per name, problems named by path.

Every endpoint that reads JSON decodes through `decode_json_object`, so the rules are the same
everywhere. Python's and msgspec's decoders keep the last of two equal names silently, which
let `{"InvoiceFormat": "Model", "InvoiceFormat": "Xml"}` register an `Xml` device: a body that
says two things is refused (`Duplicate-Field`, naming `Device.Location` or `Lines[2].Name`).

msgspec decodes (and judges syntax, UTF-8 and depth, as before); the standard library then
re-reads the already valid body with an `object_pairs_hook` that sees every name, which msgspec
cannot show. Bodies are capped by `server.max_body_bytes`, so the second pass is cheap.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from appliance.errors import FieldProblem, UnsupportedMediaType, ValidationFailed

_JSON_MEDIA_TYPE = "application/json"


def require_json_content_type(content_type: str | None) -> None:
    """`application/json` or a `+json` type, parameters (charset) allowed; else UnsupportedMediaType."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == _JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    sent = f"got {content_type!r}" if content_type else "no Content-Type was sent"
    raise UnsupportedMediaType(f"the body must be JSON: send `Content-Type: application/json` ({sent})")


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a dict tree, or ValidationFailed (field `body` for syntax, the path for duplicates)."""
    document = _decode(body)
    if not isinstance(document, dict):
        raise ValidationFailed([FieldProblem("body", "must be a JSON object", "Invalid-JSON")])
    duplicates = duplicate_field_paths(body)
    if duplicates:
        raise ValidationFailed(
            [
                FieldProblem(path, "given more than once; send each field once", "Duplicate-Field")
                for path in duplicates
            ]
        )
    return document


def duplicate_field_paths(body: bytes) -> list[str]:
    """Paths of names given twice in one object, in document order (`a.b`, `items[0].c`).

    `body` must already be valid JSON (msgspec accepted it).
    """
    try:
        tree = json.loads(body.decode("utf-8"), object_pairs_hook=_Object.from_pairs)
    except RecursionError as exc:
        raise ValidationFailed([FieldProblem("body", "nested too deeply", "Invalid-JSON")]) from exc
    except ValueError as exc:
        # The standard library refuses integers of more than 4300 digits, which msgspec took.
        raise ValidationFailed([FieldProblem("body", f"not usable JSON: {exc}", "Invalid-JSON")]) from exc
    found: list[str] = []
    # Iterative, so a deep (but decodable) body cannot exhaust the stack here.
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Object):
            found.extend(_join(path, name) for name in node.duplicates)
            stack.extend((_join(path, name), child) for name, child in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", child) for index, child in reversed(list(enumerate(node))))
    return found


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers which of its names came more than once."""

    duplicates: list[str]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> _Object:
        decoded = cls(pairs)
        seen: set[str] = set()
        decoded.duplicates = []
        for name, _ in pairs:
            if name in seen and name not in decoded.duplicates:
                decoded.duplicates.append(name)
            seen.add(name)
        return decoded


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationFailed([FieldProblem("body", f"not valid JSON: {exc}", "Invalid-JSON")]) from exc
    except UnicodeDecodeError as exc:
        # msgspec checks UTF-8 as it builds each string and lets the codec's error through.
        raise ValidationFailed([FieldProblem("body", "not valid UTF-8", "Invalid-JSON")]) from exc
    except RecursionError as exc:
        # msgspec recurses once per nesting level: a body of brackets must not become a 500.
        raise ValidationFailed([FieldProblem("body", "nested too deeply", "Invalid-JSON")]) from exc
