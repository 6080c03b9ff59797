"""The ZATCA PKCS#10 CSR, byte for byte as the official SDK writes it (zatca-protocol.md 5).

The request is assembled with asn1crypto rather than a high-level builder because the signature
comes from the token (`sign` gets the SHA-256 digest of the CertificationRequestInfo) and because
the exact DER matters: RDN order C, OU, O, CN; UTF8String values; a bare UTF8String in the
certificate-template extension; a SAN directoryName with SN, UID, title, registeredAddress,
businessCategory in that order. asn1crypto's conveniences (`Name.build`, its BMPString spec for
the template OID) would silently change those bytes, so each structure is built by hand.
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import Callable
from typing import ClassVar

from asn1crypto import algos, core, keys, x509
from asn1crypto import csr as pkcs10

from appliance.domain import CERTIFICATE_TEMPLATE
from appliance.x509.fields import CsrFields

CERTIFICATE_TEMPLATE_OID = "1.3.6.1.4.1.311.20.2"
REGISTERED_ADDRESS_OID = "2.5.4.26"  # unknown to asn1crypto, so its value is given ready-made
PEM_LABEL = "CERTIFICATE REQUEST"


class _TemplateNameExtension(x509.Extension):  # type: ignore[misc]
    """asn1crypto types the template OID's value as BMPString; ZATCA's SDK writes UTF8String."""

    _oid_specs: ClassVar[dict[str, type[core.Asn1Value]]] = dict(
        x509.Extension._oid_specs, microsoft_enroll_certtype=core.UTF8String
    )


def build_zatca_csr(fields: CsrFields, public_key_der: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """The DER CSR. `sign` receives the 32-byte SHA-256 digest and returns a DER ECDSA signature."""
    request_info = pkcs10.CertificationRequestInfo(
        {
            "version": "v1",  # asn1crypto's name for the value 0
            "subject": _subject(fields),
            "subject_pk_info": _ec_public_key_info(public_key_der),
            "attributes": [{"type": "extension_request", "values": [_extensions(fields)]}],
        }
    )
    signature = sign(hashlib.sha256(request_info.dump()).digest())
    _require_der_ecdsa_signature(signature)
    request = pkcs10.CertificationRequest(
        {
            "certification_request_info": request_info,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        }
    )
    der: bytes = request.dump()
    return der


def csr_to_pem(der: bytes) -> str:
    """PEM text with LF line endings, 64-column base64 and a trailing newline."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {PEM_LABEL}-----\n{body}\n-----END {PEM_LABEL}-----\n"


def csr_request_value(pem: str) -> str:
    """The `csr` value ZATCA expects: base64 of the whole PEM text, on one line."""
    return base64.b64encode(pem.encode("ascii")).decode("ascii")


def _extensions(fields: CsrFields) -> x509.Extensions:
    return x509.Extensions([_template_extension(fields), _subject_alt_name(fields)])


def _subject(fields: CsrFields) -> x509.Name:
    return _name(
        [
            ("country_name", x509.DirectoryString(name="printable_string", value=fields.country)),
            ("organizational_unit_name", _utf8_directory_string(fields.organization_unit)),
            ("organization_name", _utf8_directory_string(fields.organization_name)),
            ("common_name", _utf8_directory_string(fields.common_name)),
        ]
    )


def _subject_alt_name(fields: CsrFields) -> x509.Extension:
    directory_name = _name(
        [
            ("surname", _utf8_directory_string(fields.serial_number)),
            ("user_id", _utf8_directory_string(fields.vat)),
            ("title", _utf8_directory_string(fields.invoice_type)),
            (REGISTERED_ADDRESS_OID, core.UTF8String(fields.location)),
            ("business_category", _utf8_directory_string(fields.industry)),
        ]
    )
    general_name = x509.GeneralName(name="directory_name", value=directory_name)
    return x509.Extension(
        {"extn_id": "subject_alt_name", "critical": False, "extn_value": x509.GeneralNames([general_name])}
    )


def _template_extension(fields: CsrFields) -> x509.Extension:
    return _TemplateNameExtension(
        {
            "extn_id": CERTIFICATE_TEMPLATE_OID,
            "critical": False,
            "extn_value": CERTIFICATE_TEMPLATE[fields.environment],
        }
    )


def _name(attributes: list[tuple[str, core.Asn1Value]]) -> x509.Name:
    """A Name with one attribute per RDN, in exactly the given order (Name.build would re-sort)."""
    rdns = [x509.RelativeDistinguishedName([{"type": kind, "value": value}]) for kind, value in attributes]
    return x509.Name(name="", value=x509.RDNSequence(rdns))


def _utf8_directory_string(value: str) -> x509.DirectoryString:
    return x509.DirectoryString(name="utf8_string", value=value)


def _ec_public_key_info(public_key_der: bytes) -> keys.PublicKeyInfo:
    try:
        info = keys.PublicKeyInfo.load(public_key_der, strict=True)
        algorithm = info["algorithm"]["algorithm"].native
    except ValueError as exc:
        raise ValueError("the public key is not a DER SubjectPublicKeyInfo") from exc
    if algorithm != "ec":
        raise ValueError(f"ZATCA needs an EC public key; got a {algorithm} key")
    return info


def _require_der_ecdsa_signature(signature: bytes) -> None:
    """A raw r||s value from a token would make a CSR that no verifier accepts; refuse it here."""
    try:
        algos.DSASignature.load(signature, strict=True).native  # noqa: B018 - parsing is the check
    except ValueError as exc:
        raise ValueError("the signer returned something other than a DER ECDSA signature") from exc
