"""The invoice model a POS sends: casing, numbers, every refusal named by its path, and the totals."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from appliance.errors import ValidationFailed
from appliance.invoices.amounts import compute_totals, money
from appliance.invoices.model import RIYADH, InvoiceModel
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.samples import sample_kinds, sample_model
from tests.support.invoice_models import SELLER

NOW = datetime(2026, 12, 6, 15, 0, 0, tzinfo=RIYADH)


def issue_example() -> dict[str, Any]:
    """The issue's example, made a valid credit note."""
    return {
        "InvoiceNumber": "INV-2026-000123",
        "Type": "Simplified",
        "Kind": "CreditNote",
        "IssueDate": "2026-12-06",
        "IssueTime": "14:03:22",
        "Currency": "SAR",
        "PaymentMeans": "10",
        "BillingReference": "INV-2026-000100",
        "Reason": "Goods returned",
        "SupplyDate": "2026-12-06",
        "Seller": copy.deepcopy(SELLER),
        "Buyer": {
            "Name": "Buyer Co",
            "Vat": "300000000000003",
            "StreetName": "Olaya Street",
            "BuildingNumber": "4321",
            "CitySubdivisionName": "Al Malaz",
            "CityName": "Riyadh",
            "PostalZone": "54321",
            "CountryCode": "SA",
            "Identification": {"Scheme": "CRN", "Id": "2020020000"},
        },
        "Lines": [
            {
                "Name": "Coffee",
                "Quantity": "2",
                "UnitCode": "PCE",
                "UnitPrice": "10.00",
                "Discount": "0",
                "VatCategory": "S",
                "VatRate": "15",
            },
            {
                "Name": "Bread",
                "Quantity": "1.5",
                "UnitPrice": "4",
                "VatCategory": "Z",
                "VatRate": "0",
                "ExemptionReasonCode": "VATEX-SA-32",
                "ExemptionReason": "Export of goods",
            },
        ],
        "Discount": {"Amount": "1.00", "VatCategory": "S", "VatRate": "15", "Reason": "Loyalty"},
        "Note": "optional free text",
    }


def decode(document: Any, now: datetime = NOW) -> InvoiceModel:
    return decode_invoice_model(json.dumps(document, ensure_ascii=False).encode(), now=now)


def problems_of(body: Any) -> dict[str, tuple[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    with pytest.raises(ValidationFailed) as caught:
        decode_invoice_model(raw, now=NOW)
    return {problem.field: (problem.message, problem.code) for problem in caught.value.problems}


def with_changes(path: list[str | int], value: Any, *, delete: bool = False) -> dict[str, Any]:
    document = issue_example()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


# --- decoding ---------------------------------------------------------------------------------------


def test_the_issue_example_decodes_with_decimals() -> None:
    model = decode(issue_example())
    assert model.kind == "CreditNote"
    assert model.type == "Simplified"
    assert model.issue_date == date(2026, 12, 6)
    assert model.issue_time == time(14, 3, 22)
    assert model.lines[1].quantity == Decimal("1.5")
    assert type(model.lines[1].quantity) is Decimal
    assert model.discount is not None
    assert model.discount.amount == Decimal("1.00")
    assert model.seller.identification.id == "1010010000"


def test_defaults_now_in_riyadh_sar_cash_invoice_and_a_fresh_uuid() -> None:
    document = issue_example()
    for name in ("IssueDate", "IssueTime", "Currency", "PaymentMeans", "Kind", "BillingReference", "Reason"):
        del document[name]
    # 12:30 UTC is 15:30 in Riyadh.
    model = decode(document, now=datetime.fromisoformat("2026-12-06T12:30:05+00:00"))
    assert (model.issue_date, model.issue_time) == (date(2026, 12, 6), time(15, 30, 5))
    assert (model.currency, model.payment_means, model.kind) == ("SAR", "10", "Invoice")
    assert uuid.UUID(model.uuid).version == 4
    assert decode(document).uuid != model.uuid


def test_names_and_codes_ignore_case() -> None:
    document = {key.lower(): value for key, value in issue_example().items()}
    document["lines"] = [{key.upper(): value for key, value in line.items()} for line in document["lines"]]
    document["type"] = "simplified"
    document["kind"] = "creditnote"
    document["lines"][0]["VATCATEGORY"] = "s"
    model = decode(document)
    assert model.kind == "CreditNote"
    assert model.lines[0].vat_category == "S"


def test_json_numbers_are_decimals_never_floats() -> None:
    document = issue_example()
    # 0.1 and 1.005 are not representable in binary floating point.
    document["Lines"][0].update(Quantity=0.1, UnitPrice=1.05, Discount=0)
    document["Lines"][1].update(Quantity=1.005, UnitPrice=4, VatRate=0)
    del document["Discount"]
    body = json.dumps(document).encode()
    assert b'"Quantity": 0.1' in body
    model = decode_invoice_model(body, now=NOW)
    assert model.lines[0].quantity == Decimal("0.1")
    assert model.lines[0].unit_price == Decimal("1.05")
    assert model.lines[1].quantity == Decimal("1.005")
    assert all(type(value) is Decimal for line in model.lines for value in (line.quantity, line.unit_price))


def test_all_problems_are_reported_at_once_by_path() -> None:
    document = issue_example()
    document["Lines"][1]["VatRate"] = "15"
    document["Seller"]["PostalZone"] = "123"
    document["Lines"][0]["Quantity"] = "0"
    document["Colour"] = "blue"
    problems = problems_of(document)
    assert set(problems) == {"Lines[1].VatRate", "Seller.PostalZone", "Lines[0].Quantity", "Colour"}
    assert problems["Colour"][1] == "Unknown-Field"


def test_unknown_fields_are_refused_by_their_full_path() -> None:
    document = issue_example()
    document["Lines"][1]["Colour"] = "red"
    document["Seller"]["Identification"]["Issuer"] = "MoC"
    document["Buyer"]["Email"] = "a@b.c"
    problems = problems_of(document)
    assert set(problems) == {"Lines[1].Colour", "Seller.Identification.Issuer", "Buyer.Email"}
    assert {code for _, code in problems.values()} == {"Unknown-Field"}


def test_duplicate_keys_exact_or_by_case_are_refused() -> None:
    exact = json.dumps(issue_example())[:-1] + ', "InvoiceNumber": "OTHER"}'
    assert problems_of(exact.encode())["InvoiceNumber"] == ("given more than once", "Duplicate-Field")
    line = (
        '{"Name": "Tea", "Quantity": "1", "quantity": "100", "UnitPrice": "1", '
        '"VatCategory": "S", "VatRate": "15"}'
    )
    document = issue_example()
    document["Lines"] = ["LINE"]
    nested = json.dumps(document).replace('"LINE"', line)
    assert problems_of(nested.encode())["Lines[0].Quantity"][1] == "Duplicate-Field"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"InvoiceNumber": NaN}', "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_bodies_that_are_not_json_objects(body: bytes, message: str) -> None:
    problems = problems_of(body)
    assert message in problems["body"][0]


REFUSALS: list[tuple[str, list[str | int], Any, str]] = [
    ("note without billing reference", ["BillingReference"], None, "BillingReference"),
    ("note without reason", ["Reason"], None, "Reason"),
    ("zero quantity", ["Lines", 0, "Quantity"], "0", "Lines[0].Quantity"),
    ("negative quantity", ["Lines", 1, "Quantity"], -1, "Lines[1].Quantity"),
    ("price beyond halalas", ["Lines", 0, "UnitPrice"], "10.005", "Lines[0].UnitPrice"),
    ("quantity beyond 6 decimals", ["Lines", 0, "Quantity"], "1.0000001", "Lines[0].Quantity"),
    ("price as words", ["Lines", 0, "UnitPrice"], "ten", "Lines[0].UnitPrice"),
    ("price with exponent text", ["Lines", 0, "UnitPrice"], "1e3", "Lines[0].UnitPrice"),
    ("price as boolean", ["Lines", 0, "UnitPrice"], True, "Lines[0].UnitPrice"),
    ("negative line discount", ["Lines", 0, "Discount"], "-1", "Lines[0].Discount"),
    ("line discount above the line", ["Lines", 0, "Discount"], "20.01", "Lines[0].Discount"),
    ("unknown category", ["Lines", 0, "VatCategory"], "X", "Lines[0].VatCategory"),
    ("S at 10%", ["Lines", 0, "VatRate"], "10", "Lines[0].VatRate"),
    ("Z at 15%", ["Lines", 1, "VatRate"], "15", "Lines[1].VatRate"),
    ("Z without reason code", ["Lines", 1, "ExemptionReasonCode"], None, "Lines[1].ExemptionReasonCode"),
    ("Z with an E code", ["Lines", 1, "ExemptionReasonCode"], "VATEX-SA-29", "Lines[1].ExemptionReasonCode"),
    (
        "S with a reason code",
        ["Lines", 0, "ExemptionReasonCode"],
        "VATEX-SA-32",
        "Lines[0].ExemptionReasonCode",
    ),
    ("item name under 3 chars", ["Lines", 0, "Name"], "Te", "Lines[0].Name"),
    ("item name over 1000 chars", ["Lines", 0, "Name"], "x" * 1001, "Lines[0].Name"),
    ("invoice number over 127", ["InvoiceNumber"], "N" * 128, "InvoiceNumber"),
    ("invoice number blank", ["InvoiceNumber"], "  ", "InvoiceNumber"),
    ("control character", ["Lines", 0, "Name"], "Tea\x07", "Lines[0].Name"),
    ("newline in a name", ["Buyer", "Name"], "Buyer\nCo", "Buyer.Name"),
    ("reason over 1000", ["Reason"], "r" * 1001, "Reason"),
    ("currency USD", ["Currency"], "USD", "Currency"),
    ("seller VAT-like buyer VAT bad", ["Buyer", "Vat"], "300000000000004", "Buyer.Vat"),
    ("buyer VAT too short", ["Buyer", "Vat"], "3000003", "Buyer.Vat"),
    ("seller building number", ["Seller", "BuildingNumber"], "12", "Seller.BuildingNumber"),
    ("seller without district", ["Seller", "CitySubdivisionName"], None, "Seller.CitySubdivisionName"),
    ("seller without identification", ["Seller", "Identification"], None, "Seller.Identification"),
    ("seller id scheme", ["Seller", "Identification", "Scheme"], "NAT", "Seller.Identification.Scheme"),
    ("seller id not alphanumeric", ["Seller", "Identification", "Id"], "10-10", "Seller.Identification.Id"),
    ("country not ISO", ["Buyer", "CountryCode"], "XX", "Buyer.CountryCode"),
    ("payment means", ["PaymentMeans"], "99", "PaymentMeans"),
    ("issue date in the future", ["IssueDate"], "2026-12-07", "IssueDate"),
    ("issue date form", ["IssueDate"], "06/12/2026", "IssueDate"),
    ("issue time form", ["IssueTime"], "2pm", "IssueTime"),
    ("uuid form", ["Uuid"], "not-a-uuid", "Uuid"),
    ("unit code", ["Lines", 0, "UnitCode"], "PIECES", "Lines[0].UnitCode"),
    ("discount in a category no line has", ["Discount", "VatRate"], "5", "Discount.VatCategory"),
    ("discount above its category", ["Discount", "Amount"], "20.01", "Discount.Amount"),
    ("no lines", ["Lines"], [], "Lines"),
    ("lines not an array", ["Lines"], {"Name": "Tea"}, "Lines"),
]


@pytest.mark.parametrize(("path", "value", "field"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_names_its_field(path: list[str | int], value: Any, field: str) -> None:
    document = with_changes(path, value, delete=value is None)
    problems = problems_of(document)
    assert field in problems, problems
    assert list(problems) == [field], problems


def test_standard_documents_need_a_complete_buyer() -> None:
    document = issue_example()
    document["Type"] = "Standard"
    del document["Buyer"]
    assert problems_of(document)["Buyer"] == ("is required for a Standard (B2B) document", "Missing-Field")

    document = issue_example()
    document["Type"] = "Standard"
    document["Buyer"] = {"Vat": "300000000000003", "CountryCode": "SA", "StreetName": "Olaya Street"}
    assert set(problems_of(document)) == {
        "Buyer.Name",
        "Buyer.CityName",
        "Buyer.BuildingNumber",
        "Buyer.PostalZone",
        "Buyer.CitySubdivisionName",
    }

    document["Buyer"] = {
        "Name": "Foreign Co",
        "CountryCode": "AE",
        "StreetName": "Sheikh Zayed Rd",
        "CityName": "Dubai",
    }
    assert set(problems_of(document)) == {"Buyer.Identification"}
    document["Buyer"]["Identification"] = {"Scheme": "OTH", "Id": "AE123"}
    assert decode(document).buyer is not None


def test_simplified_documents_may_have_no_buyer_or_a_name_only() -> None:
    document = issue_example()
    del document["Buyer"]
    assert decode(document).buyer is None
    document["Buyer"] = {"Name": "Walk-in"}
    buyer = decode(document).buyer
    assert buyer is not None
    assert buyer.name == "Walk-in"


def test_an_invoice_refuses_note_only_fields() -> None:
    document = issue_example()
    document["Kind"] = "Invoice"
    assert set(problems_of(document)) == {"BillingReference", "Reason"}


def test_citizen_exemptions_need_the_buyers_national_id_and_name() -> None:
    document = issue_example()
    document["Lines"][1]["ExemptionReasonCode"] = "VATEX-SA-EDU"
    del document["Lines"][1]["ExemptionReason"]
    del document["Buyer"]
    with pytest.raises(ValidationFailed) as caught:
        decode(document)
    messages = [p.message for p in caught.value.problems if p.field == "Lines[1].ExemptionReasonCode"]
    assert len(messages) == 2
    assert "BR-KSA-49" in messages[0]
    assert "BR-KSA-25" in messages[1]
    document["Buyer"] = {"Name": "Student", "Identification": {"Scheme": "NAT", "Id": "1000000008"}}
    assert decode(document).lines[1].exemption_reason == "Private education to citizen"


def test_lines_of_one_category_share_one_exemption_code() -> None:
    document = issue_example()
    extra = dict(document["Lines"][1], ExemptionReasonCode="VATEX-SA-35", ExemptionReason="Medicines")
    document["Lines"].append(extra)
    assert "Lines[2].ExemptionReasonCode" in problems_of(document)


def test_codes_without_a_known_text_need_the_text() -> None:
    document = issue_example()
    document["Lines"][1].update(VatCategory="O", ExemptionReasonCode="VATEX-SA-OOS")
    del document["Lines"][1]["ExemptionReason"]
    assert problems_of(document) == {
        "Lines[1].ExemptionReason": ("is required for exemption code VATEX-SA-OOS", "Missing-Field")
    }


def test_more_than_ten_thousand_lines_are_refused() -> None:
    document = issue_example()
    document["Lines"] = [document["Lines"][0]] * 10_001
    assert problems_of(document)["Lines"][0] == "must hold at most 10,000 lines (got 10,001)"
    document["Lines"] = document["Lines"][:10_000]
    del document["Discount"]
    assert len(decode(document).lines) == 10_000


def test_an_already_decoded_mapping_is_accepted() -> None:
    model = decode_invoice_model(issue_example(), now=NOW)
    assert model.lines[0].unit_price == Decimal("10.00")


# --- amounts ----------------------------------------------------------------------------------------


def line(
    quantity: str, price: str, category: str = "S", rate: str = "15", discount: str = "0"
) -> dict[str, Any]:
    result = {
        "Name": "Item",
        "Quantity": quantity,
        "UnitPrice": price,
        "VatCategory": category,
        "VatRate": rate,
    }
    if discount != "0":
        result["Discount"] = discount
    if category == "Z":
        result["ExemptionReasonCode"] = "VATEX-SA-35"
    if category == "E":
        result["ExemptionReasonCode"] = "VATEX-SA-29"
    return result


def totals_for(lines: list[dict[str, Any]], discount: dict[str, Any] | None = None) -> Any:
    document = copy.deepcopy(issue_example())
    document["Lines"] = lines
    if discount is None:
        del document["Discount"]
    else:
        document["Discount"] = discount
    return compute_totals(decode(document))


def test_the_issue_example_totals_by_hand() -> None:
    totals = compute_totals(decode(issue_example()))
    # Coffee 2 x 10.00 = 20.00, VAT 3.00; Bread 1.5 x 4 = 6.00 zero-rated; document discount 1.00 on S.
    assert [money(amounts.net) for amounts in totals.lines] == ["20.00", "6.00"]
    assert [money(amounts.vat) for amounts in totals.lines] == ["3.00", "0.00"]
    assert [(c.category, money(c.taxable), money(c.vat)) for c in totals.categories] == [
        ("S", "19.00", "2.85"),
        ("Z", "6.00", "0.00"),
    ]
    assert totals.categories[1].exemption_reason_code == "VATEX-SA-32"
    assert money(totals.line_extension) == "26.00"
    assert money(totals.allowance_total) == "1.00"
    assert money(totals.tax_exclusive) == "25.00"
    assert money(totals.tax_inclusive) == "27.85"
    assert money(totals.payable) == "27.85"


def test_three_decimal_quantities_round_half_up_per_line() -> None:
    totals = totals_for([line("1.555", "4.33"), line("0.333", "2.99", discount="0.10")])
    # 1.555 x 4.33 = 6.73315 -> 6.73; VAT 1.0095 -> 1.01;
    # 0.333 x 2.99 - 0.10 = 0.89567 -> 0.90, VAT 0.135 -> 0.14
    assert [(money(a.net), money(a.vat), money(a.with_vat)) for a in totals.lines] == [
        ("6.73", "1.01", "7.74"),
        ("0.90", "0.14", "1.04"),
    ]
    # The category VAT is computed on the category's sum (7.63 x 15% = 1.1445 -> 1.14), not 1.01 + 0.14.
    assert [(money(c.taxable), money(c.vat)) for c in totals.categories] == [("7.63", "1.14")]
    assert money(totals.tax_inclusive) == "8.77"


def test_mixed_categories_and_rates_keep_one_subtotal_each_in_first_seen_order() -> None:
    totals = totals_for(
        [
            line("1", "100", "Z", "0"),
            line("2", "10"),
            line("1", "50", "S", "5"),
            line("1", "7", "E", "0"),
            line("3", "1.10"),
        ],
        discount={"Amount": "3.30", "VatCategory": "S", "VatRate": "15"},
    )
    summary = [(c.category, str(c.rate), money(c.taxable), money(c.vat)) for c in totals.categories]
    assert summary == [
        ("Z", "0", "100.00", "0.00"),
        ("S", "15", "20.00", "3.00"),  # 20.00 + 3.30 - 3.30
        ("S", "5", "50.00", "2.50"),
        ("E", "0", "7.00", "0.00"),
    ]
    assert money(totals.line_extension) == "180.30"
    assert money(totals.tax_exclusive) == "177.00"
    assert money(totals.vat_total) == "5.50"
    assert money(totals.payable) == "182.50"


def test_half_cent_boundaries_round_up() -> None:
    # 0.05 x 15% = 0.0075 -> 0.01; 0.03 x 15% = 0.0045 -> 0.00; 1.01 x 5% = 0.0505 -> 0.05
    totals = totals_for([line("1", "0.05")])
    assert money(totals.vat_total) == "0.01"
    assert money(totals_for([line("1", "0.03")]).vat_total) == "0.00"
    assert money(totals_for([line("1", "1.01", "S", "5")]).vat_total) == "0.05"
    # 0.125 x 1.00 = 0.125 -> 0.13 (half-up, not banker's 0.12)
    assert money(totals_for([line("0.125", "1.00")]).lines[0].net) == "0.13"


def test_two_hundred_lines_sum_exactly() -> None:
    totals = totals_for([line("1.333", "0.07") for _ in range(200)])
    # each line 0.09331 -> 0.09; VAT 0.0135 -> 0.01; category 18.00 x 15% = 2.70
    assert money(totals.line_extension) == "18.00"
    assert sum(a.vat for a in totals.lines) == Decimal("2.00")
    assert money(totals.vat_total) == "2.70"
    assert money(totals.payable) == "20.70"


def test_large_amounts_stay_exact() -> None:
    totals = totals_for([line("999999999.999999", "999999999999.99")])
    # 999999999.999999 x 999999999999.99 = 999999999999989000000.00000001: 30 significant digits,
    # more than the default decimal context's 28.
    assert money(totals.lines[0].net) == "999999999999989000000.00"
    assert money(totals.tax_inclusive) == "1149999999999987350000.00"


# --- samples ----------------------------------------------------------------------------------------


def test_sample_kinds_per_invoice_type() -> None:
    assert len(sample_kinds("1100")) == 6
    assert {kind_type for kind_type, _ in sample_kinds("1000")} == {"Standard"}
    assert {kind for _, kind in sample_kinds("0100")} == {"Invoice", "CreditNote", "DebitNote"}
    with pytest.raises(ValueError, match="1100, 1000 or 0100"):
        sample_kinds("0010")


def test_samples_avoid_the_sellers_vat_for_the_buyer() -> None:
    for seller_vat in ("399999999800003", "300000000000003"):
        model = sample_model("Invoice", "Standard", seller_vat=seller_vat, now=NOW)
        assert model.buyer is not None
        assert model.buyer.vat != seller_vat
