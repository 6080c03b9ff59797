"""A Model invoice request body: the model it describes and the digest that tells a retry apart.

The digest is SHA-256 of the parsed body as canonical JSON (names sorted, numbers as written), so
a retry that only reorders names or changes spacing is the same request; a different body under
the same `Uuid` is a conflict.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import anyio
import anyio.to_thread
import msgspec

from appliance.invoices.decode import JsonObject, parse_json_object
from appliance.invoices.model import InvoiceModel
from appliance.invoices.model_decode import decode_invoice_model

# A POS invoice body is a few KiB: decoding it (~0.1 ms per KiB) costs about what a hand-off to a
# worker thread does, so small bodies are decoded on the event loop and only larger ones leave it.
INLINE_DECODE_BYTES = 4096


async def decoded_model(body: bytes, stored_seller: bytes | None) -> tuple[InvoiceModel, str]:
    """`decode_model`, on the event loop for a small body, in a worker thread for a larger one."""
    if len(body) <= INLINE_DECODE_BYTES:
        return decode_model(body, stored_seller)
    return await anyio.to_thread.run_sync(decode_model, body, stored_seller)


def decode_model(body: bytes, stored_seller: bytes | None) -> tuple[InvoiceModel, str]:
    """The model (with the stored Seller when the body carries none) and the body's digest, from
    one parse of the body."""
    document = parse_json_object(body)
    digest = canonical_digest(document)
    if stored_seller is not None and all(name.lower() != "seller" for name, _ in document):
        document = JsonObject([("Seller", parse_json_object(stored_seller)), *document])
    return decode_invoice_model(document), digest


def canonical_digest(document: JsonObject) -> str:
    """SHA-256 of the parsed body as canonical JSON (names sorted, numbers as written)."""
    return hashlib.sha256(msgspec.json.encode(_canonical(document))).hexdigest()


def _canonical(value: object) -> object:
    if isinstance(value, JsonObject):
        return {name: _canonical(item) for name, item in sorted(value)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    return value
