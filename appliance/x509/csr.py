"""The ZATCA PKCS#10 CSR, byte for byte as the official SDK writes it (zatca-protocol.md 5).

The request is assembled with asn1crypto rather than a high-level builder because the signature
comes from the token (`sign` gets the SHA-256 digest of the CertificationRequestInfo) and because
the exact DER matters: RDN order C, OU, O, CN; UTF8String values; a bare UTF8String in the
certificate-template extension; a SAN directoryName with SN, UID, title, registeredAddress,
businessCategory in that order. asn1crypto's conveniences (`Name.build`, its BMPString spec for
the template OID) would silently change those bytes, so each structure is built by hand: leaves
with asn1crypto's primitive types, constructed values from their children's finished DER.
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import Callable

from asn1crypto import algos, core, keys

from appliance.domain import CERTIFICATE_TEMPLATE
from appliance.x509.fields import CsrFields

CERTIFICATE_TEMPLATE_OID = "1.3.6.1.4.1.311.20.2"
REGISTERED_ADDRESS_OID = "2.5.4.26"  # unknown to asn1crypto, so its value is given ready-made
PEM_LABEL = "CERTIFICATE REQUEST"

# Each part is serialised exactly once, leaves first, and a constructed value is made from its
# children's finished DER (`contents=`). Building nested asn1crypto Structs from dicts instead
# re-serialises every level each time a field is set: ~5 ms per CSR, against ~0.25 ms this way.
_VERSION_1 = core.Integer(0).dump()  # CertificationRequestInfo version v1 is the value 0
_EXTENSION_REQUEST = core.ObjectIdentifier("1.2.840.113549.1.9.14").dump()
_SUBJECT_ALT_NAME = core.ObjectIdentifier("2.5.29.17").dump()
_TEMPLATE = core.ObjectIdentifier(CERTIFICATE_TEMPLATE_OID).dump()
_ECDSA_WITH_SHA256 = core.Sequence(contents=core.ObjectIdentifier("1.2.840.10045.4.3.2").dump()).dump()
_OID = {
    name: core.ObjectIdentifier(dotted).dump()
    for name, dotted in {
        "country_name": "2.5.4.6",
        "organizational_unit_name": "2.5.4.11",
        "organization_name": "2.5.4.10",
        "common_name": "2.5.4.3",
        "surname": "2.5.4.4",
        "user_id": "0.9.2342.19200300.100.1.1",
        "title": "2.5.4.12",
        "registered_address": REGISTERED_ADDRESS_OID,
        "business_category": "2.5.4.15",
    }.items()
}


def build_zatca_csr(fields: CsrFields, public_key_der: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """The DER CSR. `sign` receives the 32-byte SHA-256 digest and returns a DER ECDSA signature."""
    request_info = _sequence(
        _VERSION_1,
        _subject(fields),
        _ec_public_key_info(public_key_der),
        # attributes [0] IMPLICIT SET OF Attribute: one extensionRequest holding the Extensions
        core.SetOf(
            contents=_sequence(_EXTENSION_REQUEST, core.SetOf(contents=_extensions(fields)).dump()),
            implicit=0,
        ).dump(),
    )
    signature = sign(hashlib.sha256(request_info).digest())
    _require_der_ecdsa_signature(signature)
    return _sequence(request_info, _ECDSA_WITH_SHA256, core.OctetBitString(signature).dump())


def csr_to_pem(der: bytes) -> str:
    """PEM text with LF line endings, 64-column base64 and a trailing newline."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {PEM_LABEL}-----\n{body}\n-----END {PEM_LABEL}-----\n"


def csr_request_value(pem: str) -> str:
    """The `csr` value ZATCA expects: base64 of the whole PEM text, on one line."""
    return base64.b64encode(pem.encode("ascii")).decode("ascii")


def _extensions(fields: CsrFields) -> bytes:
    return _sequence(_template_extension(fields), _subject_alt_name(fields))


def _subject(fields: CsrFields) -> bytes:
    return _sequence(
        _rdn_sequence(
            [
                ("country_name", core.PrintableString(fields.country)),
                ("organizational_unit_name", core.UTF8String(fields.organization_unit)),
                ("organization_name", core.UTF8String(fields.organization_name)),
                ("common_name", core.UTF8String(fields.common_name)),
            ]
        )
    )


def _subject_alt_name(fields: CsrFields) -> bytes:
    directory_name = _rdn_sequence(
        [
            ("surname", core.UTF8String(fields.serial_number)),
            ("user_id", core.UTF8String(fields.vat)),
            ("title", core.UTF8String(fields.invoice_type)),
            ("registered_address", core.UTF8String(fields.location)),
            ("business_category", core.UTF8String(fields.industry)),
        ]
    )
    # GeneralNames holding one directoryName, [4] EXPLICIT Name
    general_names = _sequence(core.Sequence(contents=directory_name, explicit=4).dump())
    # critical is left out: DER omits a BOOLEAN equal to its DEFAULT FALSE
    return _sequence(_SUBJECT_ALT_NAME, core.OctetString(general_names).dump())


def _template_extension(fields: CsrFields) -> bytes:
    """The template name as a bare UTF8String (asn1crypto's spec for this OID says BMPString)."""
    template = core.UTF8String(CERTIFICATE_TEMPLATE[fields.environment]).dump()
    return _sequence(_TEMPLATE, core.OctetString(template).dump())


def _rdn_sequence(attributes: list[tuple[str, core.Asn1Value]]) -> bytes:
    """The contents of a Name: one attribute per RDN, in exactly the given order (Name.build would
    re-sort them)."""
    return b"".join(
        core.SetOf(contents=_sequence(_OID[kind], value.dump())).dump() for kind, value in attributes
    )


def _sequence(*parts: bytes) -> bytes:
    """A DER SEQUENCE of parts already serialised."""
    der: bytes = core.Sequence(contents=b"".join(parts)).dump()
    return der


def _ec_public_key_info(public_key_der: bytes) -> bytes:
    try:
        info = keys.PublicKeyInfo.load(public_key_der, strict=True)
        algorithm = info["algorithm"]["algorithm"].native
    except ValueError as exc:
        raise ValueError("the public key is not a DER SubjectPublicKeyInfo") from exc
    if algorithm != "ec":
        raise ValueError(f"ZATCA needs an EC public key; got a {algorithm} key")
    der: bytes = info.dump()
    return der


def _require_der_ecdsa_signature(signature: bytes) -> None:
    """A raw r||s value from a token would make a CSR that no verifier accepts; refuse it here."""
    try:
        algos.DSASignature.load(signature, strict=True).native  # noqa: B018 - parsing is the check
    except ValueError as exc:
        raise ValueError("the signer returned something other than a DER ECDSA signature") from exc
