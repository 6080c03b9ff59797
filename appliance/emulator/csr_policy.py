"""What ZATCA's gateway and CA check in a CSR before they sign it (zatca-protocol.md 5 and 6).

Written independently of `appliance.x509` on purpose: the emulator is a judge of the appliance's
CSRs, so it must not share the code it judges. The structure is read with asn1crypto (string
types and DER order matter, and the high-level parsers hide both); the key and the signature are
checked with `cryptography`.

Checks run in the order a request meets them at ZATCA: the gateway's structural checks first
(answered `Invalid-CSR`), then the CA's invoice-type check (`requestID: -1`), then its policy
module's template check (`requestID: -2`, "Denied by Policy Module").
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from asn1crypto import core
from asn1crypto import csr as pkcs10
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

TEMPLATE_OID = "1.3.6.1.4.1.311.20.2"
SUBJECT_ALT_NAME_OID = "2.5.29.17"
EXTENSION_REQUEST_OID = "1.2.840.113549.1.9.14"
ECDSA_WITH_SHA256_OID = "1.2.840.10045.4.3.2"
SERIAL_NUMBER_OID = "2.5.4.5"

SUBJECT_ORDER = (("2.5.4.6", "C"), ("2.5.4.11", "OU"), ("2.5.4.10", "O"), ("2.5.4.3", "CN"))
SAN_ORDER = (
    ("2.5.4.4", "SN"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.12", "title"),
    ("2.5.4.26", "registeredAddress"),
    ("2.5.4.15", "businessCategory"),
)
_ATTRIBUTE_NAMES = dict(SUBJECT_ORDER + SAN_ORDER) | {SERIAL_NUMBER_OID: "serialNumber"}
ACCEPTED_INVOICE_TYPES = frozenset({"1000", "0100", "1100"})
PEM_ARMOUR = re.compile(
    r"-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*"
    r"-----END (?:NEW )?CERTIFICATE REQUEST-----\s*"
)
_EGS_SERIAL = re.compile(r"1-(.+)\|2-(.+)\|3-(.+)")
_VAT = re.compile(r"3[0-9]{13}3")
_TIN = re.compile(r"[0-9]{10}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_UNCOMPRESSED_POINT_BYTES = 65


class _RawExtension(core.Sequence):  # type: ignore[misc]
    """An Extension whose value stays bytes: asn1crypto would parse the template OID as BMPString."""

    _fields: ClassVar = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class _RawExtensions(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _RawExtension


class AttributeValue(NamedTuple):
    text: str
    string_type: str  # "UTF8String" or "PrintableString"


class Refusal(enum.Enum):
    INVALID_CSR = "Invalid-CSR"
    INVOICE_TYPE = "Invoice-Type"
    TEMPLATE_DENIED = "Template-Denied"


class CsrRefused(Exception):
    """`detail` explains the refusal to a user; for TEMPLATE_DENIED and INVOICE_TYPE it is the value."""

    def __init__(self, refusal: Refusal, detail: str) -> None:
        self.refusal = refusal
        self.detail = detail
        super().__init__(f"{refusal.value}: {detail}")


@dataclass(frozen=True, slots=True)
class AcceptedCsr:
    request: x509.CertificateSigningRequest
    vat: str
    invoice_type: str
    subject_alt_name_der: bytes  # the SAN extnValue, copied into the certificate byte for byte

    def __repr__(self) -> str:
        return f"AcceptedCsr(invoice_type={self.invoice_type!r})"


def csr_der_from_request_value(value: str) -> bytes:
    """The `csr` field is base64 of the PEM text (zatca-protocol.md 5.4); anything else is refused."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("the csr field is not standard base64 (one line, with padding)") from exc
    if decoded[:1] == b"\x30":
        raise _invalid("the csr field holds base64 of the DER request; ZATCA wants base64 of the PEM text")
    try:
        text = decoded.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _invalid("the csr field does not decode to PEM text") from exc
    armour = PEM_ARMOUR.fullmatch(text.strip() + "\n")
    if armour is None:
        raise _invalid("the csr field does not decode to one PEM CERTIFICATE REQUEST block")
    try:
        return base64.b64decode("".join(armour.group("body").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("the PEM body is not valid base64") from exc


def check_csr(der: bytes, expected_template: str) -> AcceptedCsr:
    """Everything ZATCA checks, or CsrRefused naming the first problem found."""
    try:
        structure = pkcs10.CertificationRequest.load(der, strict=True)
        info = structure["certification_request_info"]
        request = x509.load_der_x509_csr(der)
        _check_public_key(request, info)
        _check_signature_shape(structure, info)
        if not request.is_signature_valid:
            raise _invalid(
                "the signature does not verify with the request's public key (proof of possession)"
            )
        subject = _checked_subject(info["subject"])
        extensions = _requested_extensions(info["attributes"])
        template = _template_name(extensions)
        san_values = _subject_alt_name_values(extensions[SUBJECT_ALT_NAME_OID])
        _check_san_values(san_values, organization_unit=subject["OU"].text)
    except (ValueError, TypeError, KeyError) as exc:
        # asn1crypto parses lazily: broken inner DER surfaces here, wherever it is first touched.
        raise _invalid(f"the request is not well-formed DER PKCS#10 ({type(exc).__name__})") from exc
    invoice_type = san_values["title"].text
    if invoice_type not in ACCEPTED_INVOICE_TYPES:
        raise CsrRefused(Refusal.INVOICE_TYPE, invoice_type)
    if template != expected_template:
        raise CsrRefused(Refusal.TEMPLATE_DENIED, template)
    return AcceptedCsr(
        request=request,
        vat=san_values["UID"].text,
        invoice_type=invoice_type,
        subject_alt_name_der=extensions[SUBJECT_ALT_NAME_OID],
    )


def _invalid(detail: str) -> CsrRefused:
    return CsrRefused(Refusal.INVALID_CSR, detail)


def _check_signature_shape(
    structure: pkcs10.CertificationRequest, info: pkcs10.CertificationRequestInfo
) -> None:
    if info["version"].native != "v1":
        raise _invalid("the PKCS#10 version must be 0")
    algorithm = structure["signature_algorithm"]
    if algorithm["algorithm"].dotted != ECDSA_WITH_SHA256_OID:
        raise _invalid(
            f"the signature algorithm must be ecdsa-with-SHA256, not {algorithm['algorithm'].dotted}"
        )
    if algorithm["parameters"].native is not None:
        raise _invalid("ecdsa-with-SHA256 takes no algorithm parameters")


def _check_public_key(request: x509.CertificateSigningRequest, info: pkcs10.CertificationRequestInfo) -> None:
    try:
        key = request.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise _invalid("the public key type or curve is not supported; use EC secp256k1") from exc
    if isinstance(key, rsa.RSAPublicKey):
        raise _invalid(f"the public key is RSA-{key.key_size}; ZATCA needs EC secp256k1")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _invalid(f"the public key is {type(key).__name__}; ZATCA needs EC secp256k1")
    if not isinstance(key.curve, ec.SECP256K1):
        raise _invalid(f"the public key is on curve {key.curve.name}; ZATCA needs secp256k1")
    point = info["subject_pk_info"]["public_key"].native
    if len(point) != _UNCOMPRESSED_POINT_BYTES or point[0] != 4:
        raise _invalid("the EC public key must be an uncompressed point (65 bytes)")


def _attribute_values(
    name: asn1_x509.Name, expected: tuple[tuple[str, str], ...], where: str
) -> dict[str, AttributeValue]:
    """The single-valued RDNs of `name`, checked against `expected` OIDs in exactly that order."""
    rdns = list(name.chosen)
    expected_names = ", ".join(label for _, label in expected)
    if any(len(rdn) != 1 for rdn in rdns):
        raise _invalid(f"{where}: every RDN must hold exactly one attribute")
    found = [rdn[0]["type"].dotted for rdn in rdns]
    if found != [oid for oid, _ in expected]:
        if SERIAL_NUMBER_OID in found:
            raise _invalid(f"{where}: SN must be surname (2.5.4.4), not serialNumber (2.5.4.5)")
        got = ", ".join(_ATTRIBUTE_NAMES.get(oid, oid) for oid in found)
        raise _invalid(f"{where}: attributes must be exactly {expected_names} in that DER order; got {got}")
    return {label: _directory_string(rdn[0]["value"]) for rdn, (_, label) in zip(rdns, expected, strict=True)}


def _directory_string(value: core.Asn1Value) -> AttributeValue:
    """The text and ASN.1 string type of an attribute value, read from its own DER tag."""
    parsed = core.load(value.dump(), strict=True)
    if isinstance(parsed, core.UTF8String):
        return AttributeValue(parsed.native, "UTF8String")
    if isinstance(parsed, core.PrintableString):
        return AttributeValue(parsed.native, "PrintableString")
    raise _invalid(f"attribute values must be UTF8String or PrintableString, not {type(parsed).__name__}")


def _checked_subject(subject: asn1_x509.Name) -> dict[str, AttributeValue]:
    values = _attribute_values(subject, SUBJECT_ORDER, "subject")
    country = values["C"]
    if country.string_type != "PrintableString" or not _COUNTRY.fullmatch(country.text):
        raise _invalid("subject: C must be a PrintableString ISO 3166 alpha-2 code such as SA")
    for label in ("OU", "O", "CN"):
        _check_text(values[label].text, f"subject {label}")
    return values


def _requested_extensions(attributes: pkcs10.CRIAttributes) -> dict[str, bytes]:
    """The extnValue bytes of the one extensionRequest attribute, by OID."""
    if len(attributes) != 1 or attributes[0]["type"].dotted != EXTENSION_REQUEST_OID:
        raise _invalid("the request must carry exactly one attribute, extensionRequest")
    values = attributes[0]["values"]
    if len(values) != 1:
        raise _invalid("extensionRequest must hold exactly one set of extensions")
    extensions: dict[str, bytes] = {}
    for extension in _RawExtensions.load(values[0].dump(), strict=True):
        oid = extension["extn_id"].dotted
        if oid in extensions:
            raise _invalid(f"extension {oid} appears twice")
        extensions[oid] = extension["extn_value"].contents
    unexpected = sorted(set(extensions) - {TEMPLATE_OID, SUBJECT_ALT_NAME_OID})
    if unexpected:
        raise _invalid(f"unexpected extensions {unexpected}; only the template name and subjectAltName")
    for oid, label in (
        (TEMPLATE_OID, "the certificate template name"),
        (SUBJECT_ALT_NAME_OID, "subjectAltName"),
    ):
        if oid not in extensions:
            raise _invalid(f"the extension {label} ({oid}) is missing")
    return extensions


def _template_name(extensions: dict[str, bytes]) -> str:
    value = core.load(extensions[TEMPLATE_OID], strict=True)
    if not isinstance(value, core.UTF8String | core.PrintableString):
        raise _invalid(
            "the template extension must hold one bare UTF8String or PrintableString, "
            f"not {type(value).__name__}"
        )
    name: str = value.native
    return name


def _subject_alt_name_values(extension_value: bytes) -> dict[str, AttributeValue]:
    names = asn1_x509.GeneralNames.load(extension_value, strict=True)
    if len(names) != 1 or names[0].name != "directory_name":
        raise _invalid("subjectAltName must hold exactly one directoryName")
    return _attribute_values(names[0].chosen, SAN_ORDER, "subjectAltName directoryName")


def _check_san_values(values: dict[str, AttributeValue], organization_unit: str) -> None:
    non_utf8 = [label for label, value in values.items() if value.string_type != "UTF8String"]
    if non_utf8:
        raise _invalid(f"subjectAltName values must be UTF8String; {', '.join(non_utf8)} are not")
    serial = values["SN"].text
    if not _EGS_SERIAL.fullmatch(serial) or "=" in serial:
        raise _invalid("SN must have the form 1-<solution>|2-<model>|3-<serial> without '='")
    vat = values["UID"].text
    if not _VAT.fullmatch(vat):
        raise _invalid(f"UID must be a VAT number of 15 digits starting and ending with 3; got {vat!r}")
    if vat[10] == "1" and not _TIN.fullmatch(organization_unit):
        raise _invalid("the VAT is a group VAT (11th digit 1), so OU must be the member's 10-digit TIN")
    for label in ("registeredAddress", "businessCategory"):
        _check_text(values[label].text, label)


def _check_text(text: str, where: str) -> None:
    if not text.strip():
        raise _invalid(f"{where} must not be blank")
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise _invalid(f"{where} contains control or invisible characters")
