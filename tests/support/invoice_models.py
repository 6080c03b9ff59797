"""Invoice models as a POS sends them (the published JSON), for tests that sign or invoice."""

from __future__ import annotations

import uuid
from typing import Any

ISSUE_DATE = "2026-12-06"
SELLER: dict[str, Any] = {
    "StreetName": "King Fahd Road",
    "BuildingNumber": "1234",
    "CitySubdivisionName": "Al Olaya",
    "CityName": "Riyadh",
    "PostalZone": "12345",
    "CountryCode": "SA",
    "Identification": {"Scheme": "CRN", "Id": "1010010000"},
}
BUYER: dict[str, Any] = {
    "Name": "Buyer Co",
    "Vat": "300000000000003",
    "StreetName": "Prince Sultan Street",
    "BuildingNumber": "2322",
    "CitySubdivisionName": "Al Murabba",
    "CityName": "Riyadh",
    "PostalZone": "23333",
    "CountryCode": "SA",
}
SIX_KINDS = [(t, k) for t in ("Simplified", "Standard") for k in ("Invoice", "CreditNote", "DebitNote")]


def model(kind: str = "Invoice", invoice_type: str = "Simplified", **changes: Any) -> dict[str, Any]:
    """A valid one-line model of that kind, with a fresh invoice number and Uuid; `changes` replace
    top-level fields."""
    body: dict[str, Any] = {
        "InvoiceNumber": f"INV-{uuid.uuid4().hex[:10]}",
        "Uuid": str(uuid.uuid4()),
        "Type": invoice_type,
        "Kind": kind,
        "IssueDate": ISSUE_DATE,
        "IssueTime": "14:03:22",
        "Seller": SELLER,
        "Lines": [
            {
                "Name": "Coffee",
                "Quantity": "2",
                "UnitCode": "PCE",
                "UnitPrice": "10.00",
                "VatCategory": "S",
                "VatRate": "15",
            }
        ],
    }
    if invoice_type == "Standard":
        body["Buyer"] = BUYER
    if kind != "Invoice":
        body["BillingReference"] = "INV-2026-000100"
        body["Reason"] = "Goods returned"
    body.update(changes)
    return body
