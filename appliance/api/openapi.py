"""OpenAPI for request bodies whose decoding is ours (casing-tolerant), not Litestar's, and for
error answers.

Litestar documents request bodies from the handler's `data` type; the register handler reads
raw bytes instead, so its body is described here from a documentation Struct through msgspec's
JSON Schema, converted once into Litestar's OpenAPI objects. The schema is inlined because
Litestar rebuilds `components.schemas` from the types it saw itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from appliance.api.schemas import ErrorBody, RegisterDeviceDocument

_SCALAR_KEYS = {
    "title": "title",
    "description": "description",
    "enum": "enum",
    "default": "default",
    "pattern": "pattern",
    "maxLength": "max_length",
    "minLength": "min_length",
    "required": "required",
}
_DEFINITIONS_PREFIX = "#/$defs/"


def error_responses(*described: tuple[int, str]) -> dict[int, ResponseSpec]:
    """A controller's documented error answers (status, when it happens), all in the ErrorBody shape."""
    return {code: ResponseSpec(data_container=ErrorBody, description=text) for code, text in described}


def _to_schema(node: dict[str, Any], definitions: dict[str, Any]) -> Schema:
    if "$ref" in node:
        return _to_schema(definitions[node["$ref"].removeprefix(_DEFINITIONS_PREFIX)], definitions)
    kwargs: dict[str, Any] = {target: node[key] for key, target in _SCALAR_KEYS.items() if key in node}
    if "type" in node:
        kwargs["type"] = OpenAPIType(node["type"])
    if "properties" in node:
        kwargs["properties"] = {
            name: _to_schema(sub, definitions) for name, sub in node["properties"].items()
        }
    if "anyOf" in node:
        kwargs["any_of"] = [_to_schema(sub, definitions) for sub in node["anyOf"]]
    if "items" in node:
        kwargs["items"] = _to_schema(node["items"], definitions)
    return Schema(**kwargs)


@cache
def body_schema(document: type[msgspec.Struct]) -> Schema:
    """The OpenAPI schema of a documentation Struct (inlined: see the module docstring)."""
    schema = msgspec.json.schema(document)
    return _to_schema(schema, schema.get("$defs", {}))


def json_body_operation(document: type[msgspec.Struct], description: str) -> type[Operation]:
    """An Operation class documenting `document` as the route's JSON body (for handlers that read
    raw bytes because their decoding, with every problem named, is ours)."""

    @dataclass
    class DocumentedBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=description,
                content={"application/json": OpenAPIMediaType(schema=body_schema(document))},
            )

    return DocumentedBodyOperation


RegisterOperation = json_body_operation(
    RegisterDeviceDocument,
    "Field names match without regard to case; `DeviceDetails` and `OrganizationDetails` "
    "are accepted for `Device` and `Organization`. Unknown fields are refused by name.",
)
