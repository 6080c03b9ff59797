"""Decoding the invoice model a POS sends in `Model` format, with every refusal named by its path.

The POS describes *what* was sold; the appliance computes every amount (`amounts.py`) and renders the
UBL (`render.py`). Everything ZATCA would reject, and everything that could not be rendered exactly,
is refused here before a counter is consumed or the token is asked to sign.

Decisions where the rules leave room (each is a refusal message a POS integrator will read):

- Text limits are ZATCA's own field limits (BR-KSA-F-06-C*: invoice number 1-127, item name 3-1000,
  names/streets/reasons/notes 1000, city/district 127). `BillingReference` is held to 127 (it names
  an invoice number, which is itself at most 127) although the rule would allow 5000.
- Money inputs (`UnitPrice`, discounts) have at most 2 decimals: SAR's smallest unit is the halala
  and every money amount in the document is 2-decimal (BR-DEC-*); it also keeps
  `LineExtensionAmount = round2(Quantity x UnitPrice) - Discount` exact (BR-KSA-EN16931-11).
  Quantities have at most 6 decimals (the SDK samples print 6). Quantities stay below 10^9 and
  prices below 10^12 so no total can overflow the arithmetic context.
- VAT rates: S is 15 or 5 (BR-KSA-84); Z, E and O are 0. Exemption codes must belong to their
  category (the KSA code lists); codes whose official text is known get it when `ExemptionReason`
  is omitted. Lines of one (category, rate) share one exemption code, because the document carries
  one breakdown per (category, rate) and each breakdown names one reason (BR-Z-08 sums all Z lines).
- Only SAR is supported: the product does not convert amounts to the tax currency.
- `BillingReference` and `Reason` are refused on a plain `Invoice`: a POS that sends them meant a note.
- Array indices in field paths count from 0, as in the JSON array (`Lines[0]` is the first line).
"""

from __future__ import annotations

import re
import uuid as uuid_module
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, cast, get_args

from appliance.errors import ValidationFailed
from appliance.invoices.decode import BodyReader, JsonObject, parse_json_object
from appliance.invoices.model import (
    LONG_TEXT,
    PAYMENT_MEANS_CODES,
    RIYADH,
    SHORT_TEXT,
    InvoiceKind,
    InvoiceModel,
    InvoiceType,
)
from appliance.invoices.model_lines import check_exemption_consistency, read_discount, read_lines
from appliance.invoices.model_parties import read_buyer, read_seller

_TOP = (
    "InvoiceNumber",
    "Uuid",
    "Type",
    "Kind",
    "IssueDate",
    "IssueTime",
    "Currency",
    "PaymentMeans",
    "BillingReference",
    "Reason",
    "SupplyDate",
    "Seller",
    "Buyer",
    "Lines",
    "Discount",
    "Note",
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")


def decode_invoice_model(
    body: bytes | JsonObject | Mapping[str, object], *, now: datetime | None = None
) -> InvoiceModel:
    """Decode and check a POS's invoice model (the body, or the body as `parse_json_object` gave
    it), or raise ValidationFailed listing every problem."""
    document = parse_json_object(body) if isinstance(body, bytes | bytearray) else body
    reader = BodyReader()
    top = reader.section(document, "", _TOP)
    if top is None:
        raise ValidationFailed(reader.problems)
    current = (now or datetime.now(RIYADH)).astimezone(RIYADH)
    model = _read_model(reader, top, current)
    if reader.problems or model is None:
        raise ValidationFailed(reader.problems)
    return model


def _read_model(reader: BodyReader, top: dict[str, Any], now: datetime) -> InvoiceModel | None:
    number = reader.text(top, "InvoiceNumber", "", required=True, max_chars=SHORT_TEXT)
    document_uuid = _read_uuid(reader, top)
    doc_type = reader.code(top, "Type", "", get_args(InvoiceType))
    kind = reader.code(top, "Kind", "", get_args(InvoiceKind), default="Invoice")
    issue_date = _read_date(reader, top, "IssueDate", default=now.date())
    issue_time = _read_time(reader, top, "IssueTime", default=now.time().replace(microsecond=0))
    if issue_date is not None and issue_date > now.date():
        reader.problem("IssueDate", f"must not be after today ({now.date().isoformat()} in Riyadh)")
    currency = _read_currency(reader, top)
    payment_means = reader.code(top, "PaymentMeans", "", PAYMENT_MEANS_CODES, default="10")
    billing_reference = reader.text(top, "BillingReference", "", required=False, max_chars=SHORT_TEXT)
    reason = reader.text(top, "Reason", "", required=False, max_chars=LONG_TEXT, multiline=True)
    supply_date = _read_date(reader, top, "SupplyDate", default=None)
    note = reader.text(top, "Note", "", required=False, max_chars=LONG_TEXT, multiline=True)
    if kind in ("CreditNote", "DebitNote"):
        for field, value in (("BillingReference", billing_reference), ("Reason", reason)):
            if value is None and top.get(field) is None:
                reader.problem(field, "is required for a credit or debit note", "Missing-Field")
    elif kind == "Invoice":
        for field in ("BillingReference", "Reason"):
            if top.get(field) is not None:
                reader.problem(field, "only credit and debit notes carry it (set Kind)")

    seller = read_seller(reader, top)
    buyer = read_buyer(reader, top, standard=doc_type == "Standard")
    lines = read_lines(reader, top)
    discount = read_discount(reader, top, lines)
    if lines:
        check_exemption_consistency(reader, lines, buyer, simplified=doc_type == "Simplified")

    if (
        number is None
        or document_uuid is None
        or doc_type is None
        or kind is None
        or issue_date is None
        or issue_time is None
        or currency is None
        or payment_means is None
        or seller is None
        or lines is None
        or reader.problems
    ):
        return None
    return InvoiceModel(
        invoice_number=number,
        uuid=document_uuid,
        type=cast(InvoiceType, doc_type),
        kind=cast(InvoiceKind, kind),
        issue_date=issue_date,
        issue_time=issue_time,
        currency=currency,
        payment_means=payment_means,
        billing_reference=billing_reference,
        reason=reason,
        supply_date=supply_date,
        seller=seller,
        buyer=buyer,
        lines=tuple(lines),
        discount=discount,
        note=note,
    )


def _read_uuid(reader: BodyReader, top: dict[str, Any]) -> str | None:
    value = top.get("Uuid")
    if value is None:
        return str(uuid_module.uuid4())
    if isinstance(value, str):
        try:
            return str(uuid_module.UUID(value.strip()))
        except ValueError:
            pass
    reader.problem("Uuid", "must be a UUID such as 8e6000cf-1a98-4174-b3e7-b5d5954bc10d (or left out)")
    return None


def _read_date(reader: BodyReader, top: dict[str, Any], name: str, *, default: date | None) -> date | None:
    value = top.get(name)
    if value is None:
        return default
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    reader.problem(name, "must be a date YYYY-MM-DD")
    return None


def _read_time(reader: BodyReader, top: dict[str, Any], name: str, *, default: time) -> time | None:
    value = top.get(name)
    if value is None:
        return default
    if isinstance(value, str) and _TIME.fullmatch(value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    reader.problem(name, "must be a time hh:mm:ss (Riyadh time)")
    return None


def _read_currency(reader: BodyReader, top: dict[str, Any]) -> str | None:
    value = top.get("Currency")
    if value is None:
        return "SAR"
    if isinstance(value, str) and value.strip().upper() == "SAR":
        return "SAR"
    reader.problem(
        "Currency",
        "must be SAR: the appliance issues documents in SAR only (tax totals must be in SAR and it does "
        "not convert currencies)",
        "Unsupported-Currency",
    )
    return None
