"""What the emulator and the invoicing API read from a (signed) invoice, in one pass.

Paths are anchored at the root so that a `cbc:ID` inside a line or a reference is never mistaken for the
document's own. Absent elements become None: judging them is the verifier's and the validator's job.
"""

from __future__ import annotations

import msgspec
from cryptography import x509
from lxml import etree

from appliance.invoices.certificate import load_certificate
from appliance.invoices.hashing import invoice_hash_of, parse_invoice
from appliance.invoices.namespaces import XPATH_NS

SELLER = "cac:AccountingSupplierParty/cac:Party"
PATHS = {
    "invoice_number": "cbc:ID",
    "uuid": "cbc:UUID",
    "issue_date": "cbc:IssueDate",
    "issue_time": "cbc:IssueTime",
    "type_code": "cbc:InvoiceTypeCode",
    "type_name": "cbc:InvoiceTypeCode/@name",
    "icv": "cac:AdditionalDocumentReference[cbc:ID='ICV']/cbc:UUID",
    "pih": "cac:AdditionalDocumentReference[cbc:ID='PIH']/cac:Attachment/cbc:EmbeddedDocumentBinaryObject",
    "qr": "cac:AdditionalDocumentReference[normalize-space(cbc:ID)='QR']"
    "/cac:Attachment/cbc:EmbeddedDocumentBinaryObject",
    "seller_name": f"{SELLER}/cac:PartyLegalEntity/cbc:RegistrationName",
    "seller_vat": f"{SELLER}/cac:PartyTaxScheme/cbc:CompanyID",
    "payable_amount": "cac:LegalMonetaryTotal/cbc:PayableAmount",
    "tax_amount": "cac:TaxTotal[1]/cbc:TaxAmount",
    "signature_value": "ext:UBLExtensions//ds:Signature/ds:SignatureValue",
    "certificate": "ext:UBLExtensions//ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
    "embedded_hash": "ext:UBLExtensions//ds:Reference[@Id='invoiceSignedData']/ds:DigestValue",
}
_COMPILED = {key: etree.XPath(path, namespaces=XPATH_NS) for key, path in PATHS.items()}


class InvoiceFacts(msgspec.Struct, frozen=True, kw_only=True):
    invoice_hash: str  # computed from the document, whatever its stamp claims
    invoice_number: str | None = None
    uuid: str | None = None
    issue_date: str | None = None
    issue_time: str | None = None
    type_code: str | None = None  # 388, 381, 383
    type_name: str | None = None  # 0100000 / 0200000 ...
    icv: int | None = None
    pih: str | None = None
    qr: str | None = None
    seller_name: str | None = None
    seller_vat: str | None = None
    payable_amount: str | None = None
    tax_amount: str | None = None
    signature_value: str | None = None
    certificate_text: str | None = None  # the KeyInfo certificate, base64 DER as embedded
    embedded_hash: str | None = None  # the invoiceSignedData DigestValue

    @property
    def is_simplified(self) -> bool:
        return (self.type_name or "").startswith("02")

    def certificate(self) -> x509.Certificate | None:
        """The KeyInfo certificate; InvoiceDocumentError when it is there but unreadable."""
        return load_certificate(self.certificate_text) if self.certificate_text else None


def text_at(root: etree._Element, key: str) -> str | None:
    """The text of the first node at PATHS[key] below `root`, verbatim; None when absent."""
    return first_text(_COMPILED[key], root)


def first_text(path: etree.XPath, root: etree._Element) -> str | None:
    """The text of the first node `path` selects below `root`, verbatim; None when absent."""
    found = path(root)
    if not isinstance(found, list) or not found:
        return None
    node = found[0]
    if isinstance(node, etree._Element):
        return node.text or ""
    return str(node)


def facts_of(root: etree._Element) -> InvoiceFacts:
    values = {key: text_at(root, key) for key in PATHS if key not in {"icv", "certificate"}}
    icv_text = text_at(root, "icv")
    return InvoiceFacts(
        invoice_hash=invoice_hash_of(root),
        icv=int(icv_text) if icv_text is not None and icv_text.strip().isdigit() else None,
        certificate_text=text_at(root, "certificate"),
        **values,
    )


def parse_invoice_facts(xml: bytes) -> InvoiceFacts:
    """Facts of a document; InvoiceDocumentError when it is not well-formed XML."""
    return facts_of(parse_invoice(xml))
