"""The QR code's TLV (zatca-invoice-signing.md 5): tags 1-9, BER definite lengths, base64.

Every textual tag is the document's own text, byte for byte: the validators compare strings, so an amount
re-formatted from a Decimal (`1000.0` against `1000.00`) fails. Tag 4 is PayableAmount (SDK >= 3.3.1),
not TaxInclusiveAmount.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography import x509
from lxml import etree

from appliance.errors import InvoiceDocumentError
from appliance.invoices.certificate import public_key_info
from appliance.invoices.facts import PATHS, text_at

MAX_QR_CHARACTERS = 700  # BR-CL-KSA-14


class QrTooLong(InvoiceDocumentError):
    """The QR would exceed ZATCA's 700 base64 characters (in practice: a very long seller name)."""


def qr_tags(
    root: etree._Element,
    *,
    invoice_hash: str,
    signature_value: str,
    certificate: x509.Certificate,
    simplified: bool,
) -> dict[int, bytes]:
    """The tag values the document, its signature and certificate call for (9 only when simplified)."""
    tags = {
        1: _required(root, "seller_name").encode("utf-8"),
        2: _required(root, "seller_vat").encode("utf-8"),
        3: f"{_required(root, 'issue_date')}T{_required(root, 'issue_time')}".encode(),
        4: _required(root, "payable_amount").encode("utf-8"),
        5: _required(root, "tax_amount").encode("utf-8"),
    }
    tags[6] = invoice_hash.encode("ascii")
    tags[7] = signature_value.encode("ascii")
    tags[8] = public_key_info(certificate)
    if simplified:
        tags[9] = certificate.signature
    return tags


def build_qr(
    root: etree._Element,
    *,
    invoice_hash: str,
    signature_value: str,
    certificate: x509.Certificate,
    simplified: bool,
) -> str:
    """The base64 TLV for the QR reference; QrTooLong past 700 characters."""
    return encode_tlv(
        qr_tags(
            root,
            invoice_hash=invoice_hash,
            signature_value=signature_value,
            certificate=certificate,
            simplified=simplified,
        )
    )


def encode_tlv(tags: Mapping[int, bytes]) -> str:
    out = bytearray()
    for tag, value in tags.items():
        out.append(tag)
        out += _ber_length(len(value))
        out += value
    text = base64.b64encode(bytes(out)).decode("ascii")
    if len(text) > MAX_QR_CHARACTERS:
        raise QrTooLong(
            f"the QR code would be {len(text)} base64 characters, over ZATCA's {MAX_QR_CHARACTERS} "
            f"(BR-CL-KSA-14); tag 1, the seller name, is {len(tags.get(1, b''))} bytes"
        )
    return text


def decode_qr(b64: str) -> dict[int, bytes]:
    """Tag -> value; InvoiceDocumentError on bad base64, truncated TLVs or a repeated tag."""
    try:
        data = base64.b64decode("".join(b64.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvoiceDocumentError(f"the QR is not base64: {exc}") from exc
    tags: dict[int, bytes] = {}
    position = 0
    while position < len(data):
        if position + 2 > len(data):
            raise InvoiceDocumentError(f"the QR TLV is truncated at byte {position}")
        tag = data[position]
        length, position = _read_length(data, position + 1)
        if position + length > len(data):
            raise InvoiceDocumentError(f"the QR tag {tag} claims {length} bytes; fewer remain")
        if tag in tags:
            raise InvoiceDocumentError(f"the QR repeats tag {tag}")
        tags[tag] = data[position : position + length]
        position += length
    return tags


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x82, length >> 8, length & 0xFF])
    raise QrTooLong(f"a QR tag of {length} bytes cannot be encoded")


def _read_length(data: bytes, position: int) -> tuple[int, int]:
    first = data[position]
    if first < 0x80:
        return first, position + 1
    count = first & 0x7F
    if count not in (1, 2) or position + 1 + count > len(data):
        raise InvoiceDocumentError(f"the QR has an unsupported length encoding at byte {position}")
    return int.from_bytes(data[position + 1 : position + 1 + count], "big"), position + 1 + count


def _required(root: etree._Element, key: str) -> str:
    text = text_at(root, key)
    if text is None:
        raise InvoiceDocumentError(f"the QR needs {PATHS[key]}, which the invoice lacks")
    return text
