"""The built-in compliance samples: one model per document kind a device's InvoiceType covers.

ZATCA's compliance check wants one document of each kind the CSR's `title` announces
(zatca-protocol.md 6-7): `1100` all six, `1000` the three standard ones, `0100` the three simplified
ones. The contents follow the SDK 238-R3.4.8 samples (a standard-rated line, the SDK's note reasons),
so the documents pass the same rules the SDK's own samples pass.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from appliance.invoices.model import (
    RIYADH,
    BuyerParty,
    InvoiceKind,
    InvoiceLine,
    InvoiceModel,
    InvoiceType,
    PartyIdentification,
    SellerParty,
)

SAMPLE_SELLER = SellerParty(
    street_name="الامير سلطان | Prince Sultan",
    building_number="2322",
    city_subdivision_name="المربع | Al-Murabba",
    city_name="الرياض | Riyadh",
    postal_zone="23333",
    country_code="SA",
    identification=PartyIdentification(scheme="CRN", id="1010010000"),
)

# Two valid buyer VAT numbers, so the sample buyer's never equals the device's own (BR-CUSTOM-VALIDATION-01).
_BUYER_VATS = ("399999999800003", "300000000000003")

_REASONS: dict[InvoiceKind, str] = {
    "CreditNote": "In case of goods or services refund | عند ترجيع السلع أو الخدمات",
    "DebitNote": "Amendment of the supply value which is pre-agreed upon between the supplier and consumer",
}
_KIND_TAGS: dict[InvoiceKind, str] = {"Invoice": "INV", "CreditNote": "CRN", "DebitNote": "DBN"}
_ALL_KINDS: tuple[InvoiceKind, ...] = ("Invoice", "CreditNote", "DebitNote")


def sample_kinds(invoice_type: str) -> tuple[tuple[InvoiceType, InvoiceKind], ...]:
    """The (Type, Kind) pairs a device's InvoiceType (`1100`, `1000`, `0100`) must pass in compliance."""
    types: tuple[InvoiceType, ...]
    if invoice_type == "1100":
        types = ("Standard", "Simplified")
    elif invoice_type == "1000":
        types = ("Standard",)
    elif invoice_type == "0100":
        types = ("Simplified",)
    else:
        raise ValueError(f"invoice type must be 1100, 1000 or 0100, got {invoice_type!r}")
    return tuple((doc_type, kind) for doc_type in types for kind in _ALL_KINDS)


def sample_model(
    kind: InvoiceKind,
    type: InvoiceType,
    *,
    seller: SellerParty = SAMPLE_SELLER,
    seller_vat: str | None = None,
    now: datetime | None = None,
) -> InvoiceModel:
    """The compliance sample of one kind, issued now (Riyadh time) with a fresh UUID."""
    issued = (now or datetime.now(RIYADH)).astimezone(RIYADH)
    buyer_vat = next(vat for vat in _BUYER_VATS if vat != seller_vat)
    buyer = BuyerParty(
        name="شركة نماذج فاتورة المحدودة | Fatoora Samples LTD",
        vat=buyer_vat,
        street_name="صلاح الدين | Salah Al-Din",
        building_number="1111",
        city_subdivision_name="المروج | Al-Murooj",
        city_name="الرياض | Riyadh",
        postal_zone="12222",
        country_code="SA",
    )
    tag = f"{'S' if type == 'Standard' else 'B'}{_KIND_TAGS[kind]}"
    return InvoiceModel(
        invoice_number=f"COMPLIANCE-{tag}-{issued:%Y%m%d%H%M%S}",
        uuid=str(uuid.uuid4()),
        type=type,
        kind=kind,
        issue_date=issued.date(),
        issue_time=issued.time().replace(microsecond=0, tzinfo=None),
        billing_reference=None
        if kind == "Invoice"
        else f"COMPLIANCE-{'S' if type == 'Standard' else 'B'}INV",
        reason=_REASONS.get(kind),
        seller=seller,
        buyer=buyer if type == "Standard" else None,
        lines=(
            InvoiceLine(
                name="قلم رصاص | Pencil",
                quantity=Decimal(2),
                unit_code="PCE",
                unit_price=Decimal("2.00"),
                vat_category="S",
                vat_rate=Decimal(15),
            ),
        ),
    )
