"""Decoding ZATCA's `binarySecurityToken` into the DER certificate it carries.

The token is base64(ASCII(base64(DER))) (zatca-protocol.md 2.1). ZATCA's own renewal example
decodes to inner text that ends in CR LF and lacks its `=` padding, so both layers are decoded
leniently: whitespace is dropped and padding restored before each strict decode.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509

_WHITESPACE = re.compile(r"\s+")
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) [A-Z0-9 ]+-----")


def _lenient_b64decode(text: str, layer: str) -> bytes:
    compact = _WHITESPACE.sub("", text)
    if not compact:
        raise ValueError(f"binarySecurityToken: {layer} layer is empty")
    if len(compact) % 4 == 1:
        raise ValueError(f"binarySecurityToken: {layer} layer has an impossible base64 length")
    padded = compact + "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"binarySecurityToken: {layer} layer is not base64") from exc


def decode_binary_security_token(token: str) -> bytes:
    """Return the DER certificate inside `token`; ValueError if it does not hold one."""
    inner = _lenient_b64decode(token, "outer")
    try:
        inner_text = inner.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError("binarySecurityToken: inner layer is not base64 text") from exc
    # A token built from a PEM file keeps the armour lines; the base64 body between them is the same.
    der = _lenient_b64decode(_PEM_ARMOUR.sub("", inner_text), "inner")
    try:
        x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ValueError("binarySecurityToken does not hold an X.509 certificate") from exc
    return der
