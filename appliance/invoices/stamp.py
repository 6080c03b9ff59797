"""The enveloped XAdES stamp, the QR reference and cac:Signature (zatca-invoice-signing.md 3.4, 4, 5).

The three additions are exactly the subtrees the invoice hash ignores, and they are inserted without
tail text, so the hash of the unsigned input is the hash of the signed output and every byte of the
input stays (for any input lxml serializes back unchanged, which includes everything render.py writes
and the SDK samples). A stamp, QR or cac:Signature already present is replaced where it stands, tail
kept, so re-signing a signed document leaves the rest of it alone too.

ZATCA's "signature" is not XMLDSig: the token signs SHA-256 of the 32 raw invoice-hash bytes
(section 4.3) and SignedInfo is never signed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from appliance.errors import ApplianceError, InvoiceDocumentError
from appliance.invoices.certificate import (
    CertificateInput,
    cert_digest_of_text,
    certificate_text,
    issuer_name,
    load_certificate,
    serial_number,
)
from appliance.invoices.facts import text_at
from appliance.invoices.hashing import invoice_hash_bytes, parse_invoice, remove_keeping_tail
from appliance.invoices.namespaces import CAC, CBC, XPATH_NS, qname
from appliance.invoices.qr import build_qr
from appliance.invoices.stamp_tree import build_stamp, fill_signed_properties_digest

RIYADH = timezone(timedelta(hours=3), "AST")  # no DST in Saudi Arabia; no tzdata needed
_DECLARATION = re.compile(rb"^(\xef\xbb\xbf)?(<\?xml[^>]*\?>)(\s*)")
_UTF8 = re.compile(rb"""encoding\s*=\s*["']utf-?8["']""", re.IGNORECASE)
_FIND = {
    "extensions": etree.XPath("ext:UBLExtensions", namespaces=XPATH_NS),
    "qr": etree.XPath("cac:AdditionalDocumentReference[normalize-space(cbc:ID)='QR']", namespaces=XPATH_NS),
    "references": etree.XPath("cac:AdditionalDocumentReference", namespaces=XPATH_NS),
    "signature": etree.XPath("cac:Signature", namespaces=XPATH_NS),
}
SIGNATURE_ID = "urn:oasis:names:specification:ubl:signature:Invoice"
SIGNATURE_METHOD = "urn:oasis:names:specification:ubl:dsig:enveloped:xades"


class SignerCertificateMismatch(ApplianceError):
    """The signer's signature does not verify with the certificate's key: wrong key or wrong certificate."""

    code = "Signer-Certificate-Mismatch"


class SignedInvoice(msgspec.Struct, frozen=True):
    xml: bytes
    invoice_hash: str
    qr: str
    signature_value: str


class Presigned(msgspec.Struct, frozen=True):
    """A document's signature made before its certificate was known (`presign`).

    The token's signature covers the invoice hash only and the hash leaves out the stamp, so a
    document can be hashed and signed while ZATCA is still issuing the certificate; the stamp
    follows once it has (onboarding's compliance documents).
    """

    raw_hash: bytes  # the document's invoice hash (32 bytes)
    signature: bytes  # DER ECDSA over SHA-256 of raw_hash
    public_key_der: bytes  # SubjectPublicKeyInfo the signature was verified against


def presign(unsigned_xml: bytes, public_key_der: bytes, sign: Callable[[bytes], bytes]) -> Presigned:
    """Hash and sign a document now, and verify the signature with the signer's public key."""
    public_key = serialization.load_der_public_key(public_key_der)
    raw_hash, signature = _signed_hash(parse_invoice(unsigned_xml), sign, public_key)
    return Presigned(raw_hash=raw_hash, signature=signature, public_key_der=public_key_der)


def stamp_invoice(
    unsigned_xml: bytes,
    certificate_der: CertificateInput,
    sign: Callable[[bytes], bytes] | Presigned,
    *,
    signing_time: datetime | None = None,
) -> SignedInvoice:
    """Sign and stamp a document. `sign(digest32)` returns a DER ECDSA signature over that digest;
    a `Presigned` (from `presign` on these very bytes) is used as it is, once the certificate is
    known to certify the key it was verified with."""
    root = parse_invoice(unsigned_xml)
    certificate = load_certificate(certificate_der)
    if isinstance(sign, Presigned):
        raw_hash, signature = sign.raw_hash, sign.signature
        _check_certified_key(certificate, sign.public_key_der)
    else:
        raw_hash, signature = _signed_hash(root, sign, certificate.public_key())
    invoice_hash = base64.b64encode(raw_hash).decode("ascii")
    signature_value = base64.b64encode(signature).decode("ascii")

    cert_text = certificate_text(certificate)
    extensions = build_stamp(
        root,
        invoice_hash=invoice_hash,
        signature_value=signature_value,
        certificate_text=cert_text,
        cert_digest=cert_digest_of_text(cert_text),
        issuer=issuer_name(certificate),
        serial=serial_number(certificate),
        signing_time=_signing_time_text(signing_time),
    )
    _put(root, "extensions", extensions, lambda: root.insert(0, extensions))
    fill_signed_properties_digest(extensions)

    simplified = (text_at(root, "type_name") or "").startswith("02")
    qr = build_qr(
        root,
        invoice_hash=invoice_hash,
        signature_value=signature_value,
        certificate=certificate,
        simplified=simplified,
    )
    qr_reference = _qr_reference(root, qr)
    _put(root, "qr", qr_reference, lambda: _after_last_reference(root, qr_reference))
    ubl_signature = _ubl_signature(root)
    _put(root, "signature", ubl_signature, lambda: qr_reference.addnext(ubl_signature))
    return SignedInvoice(
        xml=_serialize(root, unsigned_xml),
        invoice_hash=invoice_hash,
        qr=qr,
        signature_value=signature_value,
    )


def _signed_hash(
    root: etree._Element, sign: Callable[[bytes], bytes], public_key: object
) -> tuple[bytes, bytes]:
    """The document's raw invoice hash and the signer's signature over it, checked with `public_key`
    before anything is built on it."""
    raw_hash = invoice_hash_bytes(root)
    signature = sign(hashlib.sha256(raw_hash).digest())
    _check_signature(signature, raw_hash, public_key)
    return raw_hash, signature


def _check_signature(signature: bytes, raw_hash: bytes, public_key: object) -> None:
    try:
        decode_dss_signature(signature)
    except ValueError as exc:
        raise SignerCertificateMismatch(
            "the signer returned something other than a DER ECDSA signature"
        ) from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise InvoiceDocumentError("the signing certificate does not hold an EC public key")
    try:
        public_key.verify(signature, raw_hash, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignerCertificateMismatch(
            "the signature does not verify with the certificate's public key: "
            "the key and the certificate do not belong together"
        ) from exc


def _check_certified_key(certificate: x509.Certificate, public_key_der: bytes) -> None:
    certified = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if certified != public_key_der:
        raise SignerCertificateMismatch(
            "the certificate does not certify the key the document was signed with: "
            "the key and the certificate do not belong together"
        )


def _signing_time_text(value: datetime | None) -> str:
    """SDK 3.4.8 form: Riyadh local time, no zone. A naive value is taken as Riyadh time already."""
    moment = value or datetime.now(RIYADH)
    if moment.tzinfo is not None:
        moment = moment.astimezone(RIYADH)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _put(root: etree._Element, kind: str, new: etree._Element, insert: Callable[[], None]) -> None:
    """Replace the existing element(s) of `kind` in place (first keeps its tail) or insert `new`."""
    existing = [e for e in _FIND[kind](root) if isinstance(e, etree._Element) and e is not new]
    if not existing:
        insert()
        return
    first, *extra = existing
    tail = first.tail
    root.replace(first, new)
    new.tail = tail
    for element in extra:
        remove_keeping_tail(element)


def _after_last_reference(root: etree._Element, element: etree._Element) -> None:
    references = [e for e in _FIND["references"](root) if isinstance(e, etree._Element) and e is not element]
    if not references:
        raise InvoiceDocumentError("the invoice has no AdditionalDocumentReference (ICV, PIH) to follow")
    references[-1].addnext(element)


def _qr_reference(root: etree._Element, qr: str) -> etree._Element:
    # Built as the root's last child so the document's own prefixes are used, then moved into place:
    # a detached element would carry its own namespace declarations.
    reference = etree.SubElement(root, qname(CAC, "AdditionalDocumentReference"))
    etree.SubElement(reference, qname(CBC, "ID")).text = "QR"
    attachment = etree.SubElement(reference, qname(CAC, "Attachment"))
    binary = etree.SubElement(attachment, qname(CBC, "EmbeddedDocumentBinaryObject"), mimeCode="text/plain")
    binary.text = qr
    etree.indent(reference, space="    ", level=1)  # inner whitespace only: the hash skips this subtree
    return reference


def _ubl_signature(root: etree._Element) -> etree._Element:
    signature = etree.SubElement(root, qname(CAC, "Signature"))
    etree.SubElement(signature, qname(CBC, "ID")).text = SIGNATURE_ID
    etree.SubElement(signature, qname(CBC, "SignatureMethod")).text = SIGNATURE_METHOD
    etree.indent(signature, space="    ", level=1)
    return signature


def _serialize(root: etree._Element, original: bytes) -> bytes:
    """UTF-8 bytes; the input's XML declaration and the whitespace after it are kept as written."""
    body = etree.tostring(root.getroottree(), encoding="UTF-8", xml_declaration=False)
    match = _DECLARATION.match(original)
    if match is None:
        return body
    bom, declaration, space = match.groups()
    if not _UTF8.search(declaration):
        declaration = b'<?xml version="1.0" encoding="UTF-8"?>'
    return (bom or b"") + declaration + space + body
