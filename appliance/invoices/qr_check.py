"""The verifier's QR check: each tag against the document, its stamp and the certificate.

Strings are compared byte for byte, as ZATCA's validators do (an amount `1000.0` is not `1000.00`).
Simplified documents must carry exactly tags 1-9; standard ones tags 1-8 (tag 9, when present, must still
be right), or no QR at all, since ZATCA adds its own at clearance.
"""

from __future__ import annotations

from cryptography import x509
from lxml import etree

from appliance.errors import InvoiceDocumentError
from appliance.invoices.checks import NOT_CHECKED, Check
from appliance.invoices.facts import InvoiceFacts
from appliance.invoices.qr import MAX_QR_CHARACTERS, decode_qr, qr_tags

TAG_SOURCES = {
    1: "seller RegistrationName",
    2: "seller VAT CompanyID",
    3: "IssueDate T IssueTime",
    4: "PayableAmount",
    5: "first TaxTotal/TaxAmount",
    6: "invoice hash",
    7: "SignatureValue",
    8: "certificate public key",
    9: "certificate signature",
}


def check_qr(root: etree._Element, facts: InvoiceFacts, certificate: x509.Certificate | None) -> Check:
    if facts.qr is None:
        if facts.is_simplified:
            return Check("qr", ok=False, reason="a simplified document must carry the QR reference")
        return Check("qr", ok=True, reason=NOT_CHECKED + "standard document without a QR")
    if len(facts.qr.strip()) > MAX_QR_CHARACTERS:
        return Check("qr", ok=False, reason=f"the QR is {len(facts.qr.strip())} characters, over 700")
    if certificate is None:
        return Check("qr", ok=False, reason="no certificate to compare tags 8 and 9 with")
    try:
        found = decode_qr(facts.qr)
        expected = qr_tags(
            root,
            invoice_hash=facts.invoice_hash,
            signature_value=(facts.signature_value or "").strip(),
            certificate=certificate,
            simplified=True,
        )
    except InvoiceDocumentError as exc:
        return Check("qr", ok=False, reason=str(exc))
    required = set(range(1, 10) if facts.is_simplified else range(1, 9))
    problems = [f"tag {tag} ({TAG_SOURCES[tag]}) is missing" for tag in sorted(required - found.keys())]
    problems += [f"tag {tag} is not a ZATCA tag" for tag in sorted(found.keys() - expected.keys())]
    for tag in sorted(found.keys() & expected.keys()):
        if found[tag] != expected[tag]:
            shown, wanted = _show(tag, found[tag]), _show(tag, expected[tag])
            problems.append(f"tag {tag} ({TAG_SOURCES[tag]}) is {shown}, expected {wanted}")
    if problems:
        return Check("qr", ok=False, reason="; ".join(problems))
    return Check("qr", ok=True, reason=f"tags {', '.join(map(str, sorted(found)))} match")


def _show(tag: int, value: bytes) -> str:
    if tag in (8, 9):
        text = value.hex()
        return text if len(text) <= 24 else f"{text[:12]}...{text[-8:]} ({len(value)} bytes)"
    return repr(value.decode("utf-8", "replace"))
