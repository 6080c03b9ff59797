"""The invoice routes' request bodies as documented in OpenAPI.

Decoding is ours (appliance.invoices.model_decode: names matched without regard to case, every problem
named by its path); these Structs only feed the OpenAPI document, in the published casing.
Amounts are decimal strings or JSON numbers, documented as strings so no client reads them as
binary floats.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Document(msgspec.Struct, rename="pascal", kw_only=True):
    pass


class PartyIdentificationDocument(_Document, kw_only=True):
    scheme: str
    id: str


class SellerDocument(_Document, kw_only=True):
    street_name: str
    building_number: str
    city_subdivision_name: str
    city_name: str
    postal_zone: str
    country_code: str = "SA"
    identification: PartyIdentificationDocument


class BuyerDocument(_Document, kw_only=True):
    name: str | None = None
    vat: str | None = None
    street_name: str | None = None
    building_number: str | None = None
    city_subdivision_name: str | None = None
    city_name: str | None = None
    postal_zone: str | None = None
    country_code: str | None = None
    identification: PartyIdentificationDocument | None = None


class InvoiceLineDocument(_Document, kw_only=True):
    name: str
    quantity: str
    unit_code: str = "PCE"
    unit_price: str
    discount: str = "0"
    vat_category: Literal["S", "Z", "E", "O"]
    vat_rate: str
    exemption_reason_code: str | None = None
    exemption_reason: str | None = None


class DocumentDiscountDocument(_Document, kw_only=True):
    amount: str
    vat_category: Literal["S", "Z", "E", "O"]
    vat_rate: str
    reason: str = "Discount"


class InvoiceModelDocument(_Document, kw_only=True):
    invoice_number: str
    uuid: str | None = None
    type: Literal["Simplified", "Standard"]
    kind: Literal["Invoice", "CreditNote", "DebitNote"] = "Invoice"
    issue_date: str | None = None
    issue_time: str | None = None
    currency: str = "SAR"
    payment_means: str = "10"
    billing_reference: str | None = None
    reason: str | None = None
    supply_date: str | None = None
    seller: SellerDocument | None = None
    buyer: BuyerDocument | None = None
    lines: list[InvoiceLineDocument]
    discount: DocumentDiscountDocument | None = None
    note: str | None = None


class SubmitDocument(_Document, kw_only=True):
    uuid: str
    invoice_number: str
    signed_xml: str
