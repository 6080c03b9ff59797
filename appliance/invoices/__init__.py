"""The invoice core: UBL rendering, invoice hash, XAdES stamp, QR and verifier (pure, no token)."""

from appliance.invoices.amounts import InvoiceTotals, compute_totals, money
from appliance.invoices.checks import Check, VerificationReport
from appliance.invoices.facts import InvoiceFacts, parse_invoice_facts
from appliance.invoices.hashing import invoice_hash
from appliance.invoices.model import (
    InvoiceModel,
    SellerIdentity,
    SellerParty,
)
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.namespaces import (
    CAC,
    CBC,
    DS,
    EXT,
    INITIAL_PIH,
    INVOICE_NS,
    NSMAP_ROOT,
    SAC,
    SBC,
    SIG,
    XADES,
)
from appliance.invoices.qr import QrTooLong, build_qr, decode_qr
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_kinds, sample_model
from appliance.invoices.stamp import SignedInvoice, SignerCertificateMismatch, stamp_invoice
from appliance.invoices.verify import verify_invoice

__all__ = [
    "CAC",
    "CBC",
    "DS",
    "EXT",
    "INITIAL_PIH",
    "INVOICE_NS",
    "NSMAP_ROOT",
    "SAC",
    "SBC",
    "SIG",
    "XADES",
    "Check",
    "InvoiceFacts",
    "InvoiceModel",
    "InvoiceTotals",
    "QrTooLong",
    "SellerIdentity",
    "SellerParty",
    "SignedInvoice",
    "SignerCertificateMismatch",
    "VerificationReport",
    "build_qr",
    "compute_totals",
    "decode_invoice_model",
    "decode_qr",
    "invoice_hash",
    "money",
    "parse_invoice_facts",
    "render_invoice",
    "sample_kinds",
    "sample_model",
    "stamp_invoice",
    "verify_invoice",
]
