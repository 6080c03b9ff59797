"""What ZATCA checks in a submitted invoice, as one pure function from bytes to a verdict.

No I/O and no shared state: the emulator runs it in a worker thread (fatoora-rs takes ~0.1 s).

The checks and the codes they answer with (zatca-invoice-signing.md 4.9, 5 and 8; zatca-protocol.md 3.2):

    request uuid != cbc:UUID                 uuid-mismatch            INVOICE_ERRORS   (emulator's code)
    request invoiceHash != computed hash      invalid-invoice-hash     INVOICE_HASHING_ERRORS
    stamp digest != computed hash            invalid-invoice-hash     INVOICE_HASHING_ERRORS
    SignedProperties digest                   signed-properties-hashing CERTIFICATE_ERRORS
    CertDigest                                certificate-hashing      CERTIFICATE_ERRORS
    IssuerSerial                              certificate-issuer-name  CERTIFICATE_ERRORS (warning)
    KeyInfo certificate not the CSID's        certificate-permissions  CERTIFICATE_ERRORS
    (the stamp and QR are judged against the certificate the document embeds)
    seller VAT != the certificate's UID       certificate-permissions  CERTIFICATE_ERRORS
    kind not covered by the title             certificate-permissions  CERTIFICATE_ERRORS
    SignatureValue                            invalid-signature        SIGNATURE_ERROR  (SDK's category)
    QR tag 8                                  publicKey_QRCODE_INVALID QRCODE_VALIDATION
    QR tag 9                                  CERTIFICATE_SIGNATURE_QRCODE_INVALID QRCODE_VALIDATION
    QR tag 3                                  invoiceTimeStamp_QRCODE_INVALID (warning) QRCODE_VALIDATION
    QR, any other problem                     QRCODE_INVALID           QRCODE_VALIDATION
    PIH not the chain's last hash             invalid-previous-invoice-hash (warning) INVOICE_HASHING_ERRORS
    XSD, EN 16931, KSA rules (fatoora-rs)     the rule id              XSD validation / EN_16931 / KSA

Signature and QR are checked for standard documents too (stricter than ZATCA, which only checks them
on simplified ones): every document the appliance sends is signed, so a broken stamp is a bug either way.
A standard document may come without a QR (ZATCA adds its own at clearance).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec
from cryptography import x509
from fatoora import Config, Environment, FatooraError, validate_zatca_invoice_from_str
from lxml import etree

from appliance.errors import InvoiceDocumentError
from appliance.invoices.certificate import same_certificate
from appliance.invoices.facts import InvoiceFacts, facts_of
from appliance.invoices.hashing import parse_invoice
from appliance.invoices.qr import decode_qr, qr_tags
from appliance.invoices.verify import Check, verify_invoice

# (InvoiceTypeCode, first two characters of its @name) -> the kind, named as its compliance step.
KINDS = {
    ("388", "01"): "standard",
    ("381", "01"): "standard-credit-note",
    ("383", "01"): "standard-debit-note",
    ("388", "02"): "simplified",
    ("381", "02"): "simplified-credit-note",
    ("383", "02"): "simplified-debit-note",
}
DOCUMENT_KINDS = tuple(KINDS.values())
XSD_VALID = (
    "XSD_ZATCA_VALID",
    "XSD validation",
    "Complied with UBL 2.1 standards in line with ZATCA specifications",
)
_STAGE_CATEGORIES = {"xsd": "XSD validation", "cen": "EN_16931", "ksa": "KSA"}
_QR_TAG_CODES = {
    3: ("invoiceTimeStamp_QRCODE_INVALID", "Time on QR Code does not match with Invoice Issue Time (KSA-25)"),
    8: ("publicKey_QRCODE_INVALID", "The public key in the QR code does not match the signing certificate"),
    9: (
        "CERTIFICATE_SIGNATURE_QRCODE_INVALID",
        "The certificate signature in the QR code does not match the signing certificate",
    ),
}


def step_for_kind(kind: str) -> str:
    return f"{kind}-compliant"


class Finding(msgspec.Struct, frozen=True):
    """One message as ZATCA words it: `type` INFO/WARNING/ERROR, `status` PASS/WARNING/ERROR."""

    type: str
    code: str
    category: str
    message: str
    status: str


def _error(code: str, category: str, message: str) -> Finding:
    return Finding("ERROR", code, category, message, "ERROR")


def _warning(code: str, category: str, message: str) -> Finding:
    return Finding("WARNING", code, category, message, "WARNING")


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    uuid: str | None
    invoice_hash: str | None  # computed from the document; None when it could not be read
    pih: str | None
    kind: str | None
    simplified: bool
    info: list[Finding]
    warnings: list[Finding]
    errors: list[Finding]

    @property
    def status(self) -> str:
        return "ERROR" if self.errors else "WARNING" if self.warnings else "PASS"

    def validation_results(self) -> dict[str, object]:
        return {
            "infoMessages": [msgspec.to_builtins(f) for f in self.info],
            "warningMessages": [msgspec.to_builtins(f) for f in self.warnings],
            "errorMessages": [msgspec.to_builtins(f) for f in self.errors],
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class SigningCredential:
    """What the authenticating CSID allows: its certificate, VAT (UID) and title."""

    certificate_der: bytes
    vat: str
    invoice_type: str
    production: bool


def examine_invoice(
    xml: bytes,
    *,
    request_uuid: str,
    request_hash: str,
    credential: SigningCredential,
    evaluated_at: dt.datetime,
) -> Verdict:
    """Every check ZATCA makes on a submitted document, in one verdict (nothing stops at the first).

    The PIH is not judged here: the chain is the caller's knowledge (`Verdict.pih` is the document's).
    """
    try:
        root = parse_invoice(xml)
        facts = facts_of(root)
        text = xml.decode("utf-8")
    except (InvoiceDocumentError, UnicodeDecodeError) as exc:
        return Verdict(
            uuid=None,
            invoice_hash=None,
            pih=None,
            kind=None,
            simplified=False,
            info=[],
            warnings=[],
            errors=[_error("XSD_ZATCA_INVALID", "XSD validation", f"The invoice cannot be read: {exc}")],
        )
    errors: list[Finding] = []
    warnings: list[Finding] = []
    kind = KINDS.get((facts.type_code or "", (facts.type_name or "")[:2]))
    issued = x509.load_der_x509_certificate(credential.certificate_der)

    if request_uuid != facts.uuid:
        message = "UUID provided in the invoice doesn't match UUID in the provided Request"
        errors.append(_error("uuid-mismatch", "INVOICE_ERRORS", message))
    if request_hash != facts.invoice_hash:
        message = "The invoice hash API body does not match the (calculated) Hash of the XML"
        errors.append(_error("invalid-invoice-hash", "INVOICE_HASHING_ERRORS", message))
    errors += _permission_problems(facts, kind, credential)
    # The stamp is judged against the certificate it embeds; whether that certificate is the one
    # issued to the credentials is a permission question of its own.
    try:
        embedded = facts.certificate()
    except InvoiceDocumentError:
        embedded = None
    if embedded is None or not same_certificate(embedded, issued):
        message = "The signing certificate is not the one issued to the authenticating CSID"
        errors.append(_error("certificate-permissions", "CERTIFICATE_ERRORS", message))
    certificate = embedded or issued
    report = verify_invoice(xml, certificate)
    errors += _stamp_problems(report.failed)
    warnings += [_issuer_warning(check.reason) for check in report.failed if check.name == "issuer-serial"]
    qr_errors, qr_warnings = _qr_problems(root, facts, certificate)
    qr_failed = next((check for check in report.failed if check.name == "qr"), None)
    if qr_failed is not None and not qr_errors and not qr_warnings:
        qr_errors.append(
            _error("QRCODE_INVALID", "QRCODE_VALIDATION", f"QR code is invalid: {qr_failed.reason}")
        )
    errors += qr_errors
    warnings += qr_warnings
    rule_errors, rule_warnings, schema_valid = _rule_findings(text, facts.pih, credential, evaluated_at)
    errors += rule_errors
    warnings += rule_warnings
    info = [Finding("INFO", *XSD_VALID, "PASS")] if schema_valid else []
    return Verdict(
        uuid=facts.uuid,
        invoice_hash=facts.invoice_hash,
        pih=facts.pih,
        kind=kind,
        simplified=facts.is_simplified,
        info=info,
        warnings=_unique(warnings),
        errors=_unique(errors),
    )


def _permission_problems(
    facts: InvoiceFacts, kind: str | None, credential: SigningCredential
) -> list[Finding]:
    problems: list[Finding] = []
    if facts.seller_vat != credential.vat:
        message = "User only allowed to use the vat number that exists in the authentication certificate"
        problems.append(_error("certificate-permissions", "CERTIFICATE_ERRORS", message))
    if kind is not None:
        position, label = (1, "Simplified") if kind.startswith("simplified") else (0, "Standard")
        if credential.invoice_type[position] != "1":
            csid = "Production" if credential.production else "Compliance"
            message = f"{csid} CSID does not cover {label} documents"
            problems.append(_error("certificate-permissions", "CERTIFICATE_ERRORS", message))
    return problems


def _stamp_problems(failed: list[Check]) -> list[Finding]:
    """The verifier's failed stamp checks as ZATCA's errors (QR, PIH and issuer are judged elsewhere)."""
    errors: list[Finding] = []
    for check in failed:
        if check.name == "invoice-hash":
            message = "The invoice hash in the stamp does not match the (calculated) Hash of the XML"
            errors.append(_error("invalid-invoice-hash", "INVOICE_HASHING_ERRORS", message))
        elif check.name == "signed-properties":
            message = "Invalid signed properties hashing, SignedProperties with id='xadesSignedProperties'"
            errors.append(_error("signed-properties-hashing", "CERTIFICATE_ERRORS", message))
        elif check.name == "cert-digest":
            errors.append(_error("certificate-hashing", "CERTIFICATE_ERRORS", "Invalid certificate hashing"))
        elif check.name == "certificate":
            message = "The signing certificate is not the one issued to the authenticating CSID"
            errors.append(_error("certificate-permissions", "CERTIFICATE_ERRORS", message))
        elif check.name == "signature":
            errors.append(
                _error("invalid-signature", "SIGNATURE_ERROR", f"wrong signature Value: {check.reason}")
            )
        elif check.name == "xml":
            errors.append(_error("XSD_ZATCA_INVALID", "XSD validation", check.reason))
    return errors


def _issuer_warning(reason: str) -> Finding:
    message = f"The X509IssuerName or X509SerialNumber does not match the certificate: {reason}"
    return _warning("certificate-issuer-name", "CERTIFICATE_ERRORS", message)


def _qr_problems(
    root: etree._Element, facts: InvoiceFacts, certificate: x509.Certificate
) -> tuple[list[Finding], list[Finding]]:
    if facts.qr is None:
        if facts.is_simplified:
            return [
                _error("QRCODE_INVALID", "QRCODE_VALIDATION", "The simplified invoice has no QR code")
            ], []
        return [], []
    try:
        found = decode_qr(facts.qr)
        # The document's own SignatureValue: tag 7 must repeat it (a wrong signature is its own error).
        expected = qr_tags(
            root,
            invoice_hash=facts.invoice_hash,
            signature_value=facts.signature_value or "",
            certificate=certificate,
            simplified=facts.is_simplified,
        )
    except InvoiceDocumentError as exc:
        return [_error("QRCODE_INVALID", "QRCODE_VALIDATION", f"QR code is invalid: {exc}")], []
    errors: list[Finding] = []
    warnings: list[Finding] = []
    for tag in sorted(set(expected) | set(found)):
        if tag not in expected and not facts.is_simplified:
            continue  # standard documents may carry tag 9 or not
        if found.get(tag) == expected.get(tag):
            continue
        default = ("QRCODE_INVALID", f"QR code tag {tag} does not match the invoice")
        code, message = _QR_TAG_CODES.get(tag, default)
        if tag == 3:  # ZATCA only warns about the timestamp (odoo PR#143379)
            warnings.append(_warning(code, "QRCODE_VALIDATION", message))
        else:
            errors.append(_error(code, "QRCODE_VALIDATION", message))
    return errors, warnings


def _rule_findings(
    text: str, pih: str | None, credential: SigningCredential, evaluated_at: dt.datetime
) -> tuple[list[Finding], list[Finding], bool]:
    """XSD, EN 16931 and KSA rules through fatoora-rs; (errors, warnings, schema valid)."""
    environment = Environment.PRODUCTION if credential.production else Environment.NON_PRODUCTION
    try:
        report = validate_zatca_invoice_from_str(
            Config(environment),
            text,
            # The document's own PIH: the chain is judged separately (compliance documents have none).
            previous_invoice_hash=pih or None,
            evaluated_at=evaluated_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    except (FatooraError, ValueError) as exc:
        message = f"Unable to execute Business Rules validation: {exc}"
        return [_error("GENERAL", "GENERAL", message)], [], False
    errors: list[Finding] = []
    warnings: list[Finding] = []
    schema_valid = True
    for stage in report.get("stages", []):
        category = _STAGE_CATEGORIES.get(stage.get("stage"))
        if category is None:
            continue
        for finding in stage.get("findings", []):
            severity = str(finding.get("severity", "error")).lower()
            code = str(finding.get("code") or ("XSD_ZATCA_INVALID" if category == "XSD validation" else "BR"))
            message = str(finding.get("message", ""))
            if severity == "warning":
                warnings.append(_warning(code, category, message))
            elif severity in ("error", "fatal"):
                errors.append(_error(code, category, message))
                schema_valid = schema_valid and category != "XSD validation"
        if category == "XSD validation" and stage.get("status") not in ("completed", None):
            schema_valid = False
    return errors, warnings, schema_valid


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    kept: list[Finding] = []
    for finding in findings:
        if (finding.code, finding.message) not in seen:
            seen.add((finding.code, finding.message))
            kept.append(finding)
    return kept
