"""Offline verification of a signed invoice, check by check (zatca-invoice-signing.md 4.2, 5, 9).

Every report lists the same checks in the same order, so the emulator can map names to ZATCA codes. A
check the document or the call cannot be subject to (no certificate given, no previous hash given, a
standard document without a QR) is reported as passed with a reason starting "not checked:".

Like the SDK's validator, the signature is verified over the *recomputed* invoice hash, so a stale
DigestValue fails "invoice-hash" alone; unlike it, signatures and QR are checked on standard documents
too, and issuer/serial are compared with the given certificate, or else the embedded one.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from appliance.errors import InvoiceDocumentError
from appliance.invoices.certificate import (
    cert_digest_of_text,
    issuer_name,
    load_certificate,
    same_certificate,
    serial_number,
)
from appliance.invoices.checks import NOT_CHECKED, Check, VerificationReport
from appliance.invoices.facts import InvoiceFacts, facts_of, first_text
from appliance.invoices.hashing import parse_invoice
from appliance.invoices.namespaces import XPATH_NS
from appliance.invoices.qr_check import check_qr
from appliance.invoices.xades import signed_properties_digest, source_declarations

CHECK_NAMES = (
    "xml",
    "invoice-hash",
    "signed-properties",
    "cert-digest",
    "issuer-serial",
    "certificate",
    "signature",
    "qr",
    "pih",
)
_STAMP = "ext:UBLExtensions//"
_PATHS = {
    "signed_properties": _STAMP + "xades:SignedProperties",
    "properties_digest": _STAMP + "ds:Reference[@URI='#xadesSignedProperties']/ds:DigestValue",
    "cert_digest": _STAMP + "xades:CertDigest/ds:DigestValue",
    "issuer": _STAMP + "xades:IssuerSerial/ds:X509IssuerName",
    "serial": _STAMP + "xades:IssuerSerial/ds:X509SerialNumber",
}
_FIND = {key: etree.XPath(path, namespaces=XPATH_NS) for key, path in _PATHS.items()}

__all__ = ["CHECK_NAMES", "NOT_CHECKED", "Check", "VerificationReport", "verify_invoice"]


def verify_invoice(
    xml: bytes,
    certificate: x509.Certificate | bytes | None = None,
    previous_hash: str | None = None,
) -> VerificationReport:
    """Recompute and compare everything the stamp and QR claim. A bad `certificate` argument raises."""
    given = load_certificate(certificate) if certificate is not None else None
    try:
        root = parse_invoice(xml)
    except InvoiceDocumentError as exc:
        failed = Check("xml", ok=False, reason=str(exc))
        return VerificationReport(
            [failed], invoice_hash="", uuid=None, icv=None, pih=None, is_simplified=False
        )
    facts = facts_of(root)
    embedded, embedded_problem = _embedded_certificate(facts)
    key_certificate = given or embedded
    checks = [
        Check("xml", ok=True, reason="well-formed"),
        _compare("invoice-hash", "invoiceSignedData DigestValue", facts.embedded_hash, facts.invoice_hash),
        _signed_properties(root, xml),
        _cert_digest(root, facts),
        _issuer_serial(root, key_certificate, embedded_problem),
        _certificate(given, embedded, embedded_problem),
        _signature(facts, key_certificate, embedded_problem),
        check_qr(root, facts, key_certificate),
        _pih(facts, previous_hash),
    ]
    return VerificationReport(
        checks,
        invoice_hash=facts.invoice_hash,
        uuid=facts.uuid,
        icv=facts.icv,
        pih=facts.pih,
        is_simplified=facts.is_simplified,
    )


def _embedded_certificate(facts: InvoiceFacts) -> tuple[x509.Certificate | None, str]:
    if not facts.certificate_text:
        return None, "the document has no KeyInfo X509Certificate"
    try:
        return load_certificate(facts.certificate_text), ""
    except InvoiceDocumentError as exc:
        return None, f"the KeyInfo certificate is unreadable: {exc}"


def _first_text(root: etree._Element, key: str) -> str | None:
    return first_text(_FIND[key], root)


def _compare(name: str, what: str, stated: str | None, expected: str, source: str = "recomputed") -> Check:
    if stated is None:
        return Check(name, ok=False, reason=f"the document has no {what}")
    if stated.strip() != expected:
        return Check(name, ok=False, reason=f"{what} is {stated.strip()!r}, expected {expected!r} ({source})")
    return Check(name, ok=True, reason=f"{what} equals the {source} value")


def _signed_properties(root: etree._Element, xml: bytes) -> Check:
    found = _FIND["signed_properties"](root)
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return Check("signed-properties", ok=False, reason="the document has no xades:SignedProperties")
    stated = _first_text(root, "properties_digest")
    return _compare(
        "signed-properties",
        "SignedProperties DigestValue",
        stated,
        signed_properties_digest(found[0], source_declarations(xml)),
    )


def _cert_digest(root: etree._Element, facts: InvoiceFacts) -> Check:
    if facts.certificate_text is None:
        return Check("cert-digest", ok=False, reason="the document has no KeyInfo X509Certificate")
    stated = _first_text(root, "cert_digest")
    return _compare("cert-digest", "CertDigest", stated, cert_digest_of_text(facts.certificate_text))


def _issuer_serial(root: etree._Element, certificate: x509.Certificate | None, problem: str) -> Check:
    if certificate is None:
        return Check("issuer-serial", ok=False, reason=problem)
    issuer, serial = _first_text(root, "issuer"), _first_text(root, "serial")
    if issuer is None or serial is None:
        return Check("issuer-serial", ok=False, reason="the document has no X509IssuerName/X509SerialNumber")
    if issuer.strip() != issuer_name(certificate):
        return Check(
            "issuer-serial",
            ok=False,
            reason=f"X509IssuerName is {issuer.strip()!r}, the certificate's is {issuer_name(certificate)!r}",
        )
    if serial.strip() != serial_number(certificate):
        return Check(
            "issuer-serial",
            ok=False,
            reason=f"X509SerialNumber is {serial.strip()!r}, the certificate's is "
            f"{serial_number(certificate)}",
        )
    return Check("issuer-serial", ok=True, reason="issuer and serial match the certificate")


def _certificate(given: x509.Certificate | None, embedded: x509.Certificate | None, problem: str) -> Check:
    if given is None:
        return Check(
            "certificate", ok=True, reason=NOT_CHECKED + "no certificate given; the embedded one is used"
        )
    if embedded is None:
        return Check("certificate", ok=False, reason=problem)
    if not same_certificate(given, embedded):
        return Check(
            "certificate",
            ok=False,
            reason=f"the embedded certificate ({embedded.subject.rfc4514_string()}, serial "
            f"{embedded.serial_number}) is not the given one ({given.subject.rfc4514_string()}, "
            f"serial {given.serial_number})",
        )
    return Check("certificate", ok=True, reason="the embedded certificate is the given one")


def _signature(facts: InvoiceFacts, certificate: x509.Certificate | None, problem: str) -> Check:
    if certificate is None:
        return Check("signature", ok=False, reason=problem)
    if not facts.signature_value:
        return Check("signature", ok=False, reason="the document has no SignatureValue")
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return Check("signature", ok=False, reason="the certificate does not hold an EC public key")
    try:
        signature = base64.b64decode("".join(facts.signature_value.split()), validate=True)
        public_key.verify(signature, base64.b64decode(facts.invoice_hash), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError) as exc:
        return Check("signature", ok=False, reason=f"SignatureValue is not base64 DER ECDSA: {exc}")
    except InvalidSignature:
        return Check(
            "signature",
            ok=False,
            reason="SignatureValue does not verify over the invoice hash bytes with the certificate's key",
        )
    return Check("signature", ok=True, reason="SignatureValue verifies over the invoice hash")


def _pih(facts: InvoiceFacts, previous_hash: str | None) -> Check:
    if previous_hash is None:
        return Check("pih", ok=True, reason=NOT_CHECKED + "no previous invoice hash given")
    return _compare("pih", "PIH", facts.pih, previous_hash.strip(), source="previous invoice's hash")
