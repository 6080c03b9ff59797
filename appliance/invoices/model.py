"""The invoice model a POS sends in `Model` format: its Structs, types and limits (no I/O).

`model_decode.decode_invoice_model` builds it from the JSON body, refusing with every problem named
by its path; `amounts.py` computes every total from it and `render.py` writes the UBL.
"""

from __future__ import annotations

from datetime import date, time, timedelta, timezone
from decimal import Decimal
from typing import Literal

import msgspec

InvoiceType = Literal["Simplified", "Standard"]
InvoiceKind = Literal["Invoice", "CreditNote", "DebitNote"]
VatCategory = Literal["S", "Z", "E", "O"]

# Riyadh has kept UTC+3 without daylight saving since 1947: a fixed offset needs no tzdata.
RIYADH = timezone(timedelta(hours=3), "Asia/Riyadh")

MAX_LINES = 10_000
MAX_QUANTITY = Decimal("1000000000")
MAX_PRICE = Decimal("1000000000000")
QUANTITY_PLACES = 6
MONEY_PLACES = 2
STANDARD_RATES = (Decimal(15), Decimal(5))
PAYMENT_MEANS_CODES = ("10", "30", "42", "48", "1")
SELLER_ID_SCHEMES = ("CRN", "MOM", "MLS", "SAG", "OTH", "700")
BUYER_ID_SCHEMES = ("TIN", "CRN", "MOM", "MLS", "700", "SAG", "NAT", "GCC", "IQA", "PAS", "OTH")

# Exemption (exception) reason codes per category, from the KSA rules' code lists (BR-KSA-CL-04),
# with the official English text where this module knows it.
EXEMPTION_CODES: dict[str, VatCategory] = {
    "VATEX-SA-29": "E",
    "VATEX-SA-29-7": "E",
    "VATEX-SA-30": "E",
    "VATEX-SA-32": "Z",
    "VATEX-SA-33": "Z",
    "VATEX-SA-34-1": "Z",
    "VATEX-SA-34-2": "Z",
    "VATEX-SA-34-3": "Z",
    "VATEX-SA-34-4": "Z",
    "VATEX-SA-34-5": "Z",
    "VATEX-SA-35": "Z",
    "VATEX-SA-36": "Z",
    "VATEX-SA-EDU": "Z",
    "VATEX-SA-HEA": "Z",
    "VATEX-SA-MLTRY": "Z",
    "VATEX-SA-DIPLOMAT": "Z",
    "VATEX-SA-DUTYFREE": "Z",
    "VATEX-SA-OOS": "O",
}
EXEMPTION_TEXTS = {
    "VATEX-SA-29": "Financial services mentioned in Article 29 of the VAT Regulations",
    "VATEX-SA-29-7": "Life insurance services mentioned in Article 29 of the VAT Regulations",
    "VATEX-SA-30": "Real estate transactions mentioned in Article 30 of the VAT Regulations",
    "VATEX-SA-32": "Export of goods",
    "VATEX-SA-33": "Export of services",
    "VATEX-SA-34-1": "The international transport of Goods",
    "VATEX-SA-34-2": "International transport of passengers",
    "VATEX-SA-34-3": "Services directly connected and incidental to a Supply of international passenger "
    "transport",
    "VATEX-SA-34-4": "Supply of a qualifying means of transport",
    "VATEX-SA-34-5": "Any services relating to Goods or passenger transportation, as defined in article "
    "twenty five of these Regulations",
    "VATEX-SA-35": "Medicines and medical equipment",
    "VATEX-SA-36": "Qualifying metals",
    "VATEX-SA-EDU": "Private education to citizen",
    "VATEX-SA-HEA": "Private healthcare to citizen",
    "VATEX-SA-MLTRY": "Supply of qualified military goods",
}
# These two exemptions need the buyer's national ID (BR-KSA-49) and, when simplified, name (BR-KSA-25).
CITIZEN_EXEMPTIONS = frozenset({"VATEX-SA-EDU", "VATEX-SA-HEA"})


class PartyIdentification(msgspec.Struct, frozen=True, kw_only=True):
    scheme: str
    id: str


class SellerParty(msgspec.Struct, frozen=True, kw_only=True):
    """The seller's address and identification; its VAT number and name come from the registration."""

    street_name: str
    building_number: str
    city_subdivision_name: str
    city_name: str
    postal_zone: str
    country_code: str = "SA"
    identification: PartyIdentification


class BuyerParty(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None = None
    vat: str | None = None
    street_name: str | None = None
    building_number: str | None = None
    city_subdivision_name: str | None = None
    city_name: str | None = None
    postal_zone: str | None = None
    country_code: str | None = None
    identification: PartyIdentification | None = None


class InvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    quantity: Decimal
    unit_code: str = "PCE"
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    vat_category: VatCategory
    vat_rate: Decimal
    exemption_reason_code: str | None = None
    exemption_reason: str | None = None


class DocumentDiscount(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal
    vat_category: VatCategory
    vat_rate: Decimal
    reason: str = "Discount"


class InvoiceModel(msgspec.Struct, frozen=True, kw_only=True):
    invoice_number: str
    uuid: str
    type: InvoiceType
    kind: InvoiceKind = "Invoice"
    issue_date: date
    issue_time: time
    currency: str = "SAR"
    payment_means: str = "10"
    billing_reference: str | None = None
    reason: str | None = None
    supply_date: date | None = None
    seller: SellerParty
    buyer: BuyerParty | None = None
    lines: tuple[InvoiceLine, ...]
    discount: DocumentDiscount | None = None
    note: str | None = None

    @property
    def is_simplified(self) -> bool:
        return self.type == "Simplified"


class SellerIdentity(msgspec.Struct, frozen=True):
    """The seller's VAT number and legal name, from the device's registration (and certificate)."""

    vat: str
    name: str


# ZATCA's text limits (BR-KSA-F-06-C*): names, streets, reasons and notes; numbers, cities, districts.
LONG_TEXT = 1000
SHORT_TEXT = 127
