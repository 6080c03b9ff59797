"""What the stamp, the QR and the verifier take from the signing certificate (sections 4.5, 4.6, 5).

These are the SDK's conventions, not XMLDSig's: the certificate digest is taken over the base64 *text*,
the issuer is Java's `getIssuerDN().getName()` form, the serial is decimal.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.errors import InvoiceDocumentError

CertificateInput = x509.Certificate | bytes | str


def load_certificate(value: CertificateInput) -> x509.Certificate:
    """A certificate from an object, DER bytes, PEM bytes/text, or bare base64 DER text."""
    if isinstance(value, x509.Certificate):
        return value
    data = value.encode("ascii", "replace") if isinstance(value, str) else value
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: DER
            return x509.load_der_x509_certificate(data)
        return x509.load_der_x509_certificate(base64.b64decode(b"".join(data.split()), validate=True))
    except ValueError as exc:
        raise InvoiceDocumentError(f"not an X.509 certificate (DER, PEM or base64 DER): {exc}") from exc


def certificate_text(certificate: x509.Certificate) -> str:
    """The `ds:X509Certificate` text: base64 of the DER on one line (decoded once, section 4.8)."""
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def cert_digest_of_text(text: str) -> str:
    """CertDigest: base64 of the lowercase hex SHA-256 of the certificate's base64 text."""
    hex_digest = hashlib.sha256(text.encode("ascii", "replace")).hexdigest()
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


def issuer_name(certificate: x509.Certificate) -> str:
    """Java's issuer string: RDNs most specific first, joined by comma and space."""
    return ", ".join(
        attribute.rfc4514_string() for rdn in reversed(certificate.issuer.rdns) for attribute in rdn
    )


def serial_number(certificate: x509.Certificate) -> str:
    return str(certificate.serial_number)


def public_key_info(certificate: x509.Certificate) -> bytes:
    """QR tag 8: the SubjectPublicKeyInfo DER."""
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_certificate(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a.public_bytes(serialization.Encoding.DER) == b.public_bytes(serialization.Encoding.DER)
