"""Invoice submissions to ZATCA (compliance checks, reporting, clearance) and what comes back.

The three endpoints share one request body and one answer shape (zatca-invoice-signing.md 8):

    {"invoiceHash", "uuid", "invoice": base64 of the exact signed bytes}
    {"validationResults": {"infoMessages", "warningMessages", "errorMessages", "status"},
     "reportingStatus", "clearanceStatus", "clearedInvoice", "qrSellertStatus", "qrBuyertStatus"}

A validation verdict is a result, not an exception, even a rejection (400 with validationResults):
the caller records it and issues a new document. Only answers that carry no verdict raise.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from appliance.errors import ZatcaMessage, ZatcaRejected, ZatcaUnavailable


class InvoiceSubmission(msgspec.Struct, frozen=True):
    """One signed document as ZATCA wants it: its hash, its cbc:UUID and its exact bytes."""

    invoice_hash: str
    uuid: str
    invoice_xml: bytes

    def __post_init__(self) -> None:
        if not self.invoice_hash.strip():
            raise ValueError("invoice_hash must not be empty")
        if not self.uuid.strip():
            raise ValueError("uuid must not be empty")
        if not self.invoice_xml:
            raise ValueError("invoice_xml must not be empty")

    def request_body(self) -> dict[str, str]:
        # The bytes go out exactly as signed: any re-serialisation would change the invoice hash.
        return {
            "invoiceHash": self.invoice_hash,
            "uuid": self.uuid,
            "invoice": base64.b64encode(self.invoice_xml).decode("ascii"),
        }

    def __repr__(self) -> str:
        size = len(self.invoice_xml)
        return f"InvoiceSubmission(uuid={self.uuid!r}, invoice_hash={self.invoice_hash!r}, <{size} bytes>)"


class InvoiceMessage(msgspec.Struct, frozen=True):
    """One validation message: `type` INFO/WARNING/ERROR, ZATCA's `code` and `category`."""

    type: str
    code: str
    category: str
    message: str
    status: str


class InvoiceResult(msgspec.Struct, frozen=True, kw_only=True):
    """ZATCA's verdict on one document.

    `status` is validationResults.status (PASS, WARNING, ERROR; empty when ZATCA sent none).
    `duplicate`: the hash was already accepted (208 on clearance, 409 on reporting); ZATCA counts
    the document as cleared/reported, so it is a success whatever the messages say.
    `cleared_invoice`: the document with ZATCA's stamp and QR, from clearance (also on 208).
    """

    http_status: int
    status: str
    info_messages: tuple[InvoiceMessage, ...] = ()
    warning_messages: tuple[InvoiceMessage, ...] = ()
    error_messages: tuple[InvoiceMessage, ...] = ()
    reporting_status: str | None = None
    clearance_status: str | None = None
    cleared_invoice: bytes | None = None
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        return self.duplicate or (self.http_status in (200, 202) and self.status != "ERROR")


class _MessageWire(msgspec.Struct):
    type: str | None = None
    code: str | None = None
    category: str | None = None
    message: str | None = None
    status: str | None = None


class _ValidationWire(msgspec.Struct):
    info_messages: list[_MessageWire] | _MessageWire | None = msgspec.field(default=None, name="infoMessages")
    warning_messages: list[_MessageWire] | None = msgspec.field(default=None, name="warningMessages")
    error_messages: list[_MessageWire] | None = msgspec.field(default=None, name="errorMessages")
    status: str | None = None


class _ResultWire(msgspec.Struct):
    validation_results: _ValidationWire | None = msgspec.field(default=None, name="validationResults")
    # Swagger's example puts these at top level instead of under validationResults.
    info_messages: list[_MessageWire] | _MessageWire | None = msgspec.field(default=None, name="infoMessages")
    warning_messages: list[_MessageWire] | None = msgspec.field(default=None, name="warningMessages")
    error_messages: list[_MessageWire] | None = msgspec.field(default=None, name="errorMessages")
    status: str | None = None
    reporting_status: str | None = msgspec.field(default=None, name="reportingStatus")
    clearance_status: str | None = msgspec.field(default=None, name="clearanceStatus")
    cleared_invoice: str | None = msgspec.field(default=None, name="clearedInvoice")
    # 409's top-level shape: {"code": "Invoice-Errors", "category": "Duplicate-Invoice", "message"}
    code: str | None = None
    category: str | None = None
    message: str | None = None


def _messages(
    value: list[_MessageWire] | _MessageWire | None, default_type: str
) -> tuple[InvoiceMessage, ...]:
    entries = [value] if isinstance(value, _MessageWire) else (value or [])
    return tuple(
        InvoiceMessage(
            type=entry.type or default_type,
            code=entry.code or "",
            category=entry.category or "",
            message=entry.message or "",
            status=entry.status or "",
        )
        for entry in entries
    )


def decode_result_wire(endpoint: str, status_code: int, body: bytes) -> _ResultWire:
    try:
        return msgspec.json.decode(body, type=_ResultWire)
    except msgspec.DecodeError as exc:
        raise ZatcaUnavailable(
            endpoint, "bad-response", f"not a validation answer: {exc}", status_code
        ) from exc


def has_verdict(wire: _ResultWire) -> bool:
    return wire.validation_results is not None or wire.error_messages is not None


def result_from_wire(
    endpoint: str, status_code: int, wire: _ResultWire, *, duplicate: bool = False
) -> InvoiceResult:
    validation = wire.validation_results or _ValidationWire(
        info_messages=wire.info_messages,
        warning_messages=wire.warning_messages,
        error_messages=wire.error_messages,
        status=wire.status,
    )
    errors = _messages(validation.error_messages, "ERROR")
    if wire.code or wire.category:
        # A top-level coded message (409's Duplicate-Invoice) is kept with the others.
        errors += (
            InvoiceMessage("ERROR", wire.code or "", wire.category or "", wire.message or "", "ERROR"),
        )
    cleared: bytes | None = None
    if wire.cleared_invoice:
        try:
            cleared = base64.b64decode(wire.cleared_invoice, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ZatcaUnavailable(
                endpoint, "bad-response", "clearedInvoice is not base64", status_code
            ) from exc
    return InvoiceResult(
        http_status=status_code,
        status=validation.status or ("ERROR" if status_code == 400 else ""),
        info_messages=_messages(validation.info_messages, "INFO"),
        warning_messages=_messages(validation.warning_messages, "WARNING"),
        error_messages=errors,
        reporting_status=wire.reporting_status,
        clearance_status=wire.clearance_status,
        cleared_invoice=cleared,
        duplicate=duplicate,
    )


def clearance_required(endpoint: str, body: bytes) -> ZatcaRejected:
    """303: ZATCA wants this document cleared, not reported (DISC 991)."""
    messages = [
        ZatcaMessage(
            "Clearance-Required",
            "ZATCA answered 303: a standard (B2B) document was sent to reporting; send it to clearance",
        )
    ]
    try:
        wire = msgspec.json.decode(body, type=_ResultWire)
    except msgspec.DecodeError:
        wire = None
    if wire is not None:
        for entry in result_from_wire(endpoint, 303, wire).error_messages:
            messages.append(ZatcaMessage(entry.code or entry.category, entry.message))
    return ZatcaRejected(endpoint, 303, messages)
