"""Rendered documents: section 2's shape, and fatoora-rs's XSD, EN16931 and KSA stages as the judge.

The documents are unsigned here, so fatoora-rs's signature and QR stages are not asserted on; the
KSA stage's two findings about the missing QR and stamp of simplified documents are listed
explicitly. Signing and the full validation come with the stamp's tests.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fatoora import Config, validate_zatca_invoice_from_str
from lxml import etree

from appliance.errors import ValidationFailed
from appliance.invoices.model import RIYADH, InvoiceModel, SellerIdentity
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.namespaces import INITIAL_PIH, XPATH_NS
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_kinds, sample_model

NOW = datetime(2026, 12, 6, 15, 0, 0, tzinfo=RIYADH)
# Half an hour after issue: BR-KSA-98 (simplified reported within 24 hours) does not fire.
EVALUATED_AT = "2026-12-06T15:30:00+03:00"
SELLER = SellerIdentity(
    "399999999900003", "شركة توريد التكنولوجيا بأقصى سرعة المحدودة | Maximum Speed Tech Supply LTD"
)
# A previous invoice hash as the chain stores it: base64 of a SHA-256 digest.
PIH = "6a2e6mv8vg7Z5HzByb/os5ffE5g4wFNBI3W4gP/5wqM="
# An unsigned simplified document has no QR (BR-KSA-27) and no stamp (BR-KSA-60) yet: the stamp adds both.
UNSIGNED_SIMPLIFIED_WARNINGS = {"BR-KSA-27", "BR-KSA-60"}

SELLER_ADDRESS = {
    "StreetName": "طريق الملك فهد | King Fahd Road",
    "BuildingNumber": "1234",
    "CitySubdivisionName": "العليا | Al Olaya",
    "CityName": "الرياض | Riyadh",
    "PostalZone": "12345",
    "CountryCode": "SA",
    "Identification": {"Scheme": "CRN", "Id": "1010010000"},
}
BUYER = {
    "Name": "شركة المشتري | Buyer Co",
    "Vat": "300000000000003",
    "StreetName": "شارع العليا",
    "BuildingNumber": "4321",
    "CitySubdivisionName": "الملز",
    "CityName": "الرياض",
    "PostalZone": "54321",
    "CountryCode": "SA",
}


def validate(xml: bytes, pih: str) -> tuple[list[dict[str, Any]], set[str]]:
    """(error findings, warning codes) of the xsd, cen and ksa stages, each of which must complete."""
    report = validate_zatca_invoice_from_str(
        Config(), xml.decode("utf-8"), previous_invoice_hash=pih, evaluated_at=EVALUATED_AT
    )
    stages = {stage["stage"]: stage for stage in report["stages"]}
    errors: list[dict[str, Any]] = []
    warnings: set[str] = set()
    for name in ("xsd", "cen", "ksa"):
        assert stages[name]["status"] == "completed", stages[name]
        for finding in stages[name]["findings"]:
            if finding["severity"] == "warning":
                warnings.add(finding["code"])
            else:
                errors.append(finding)
    return errors, warnings


def assert_valid(model: InvoiceModel, *, icv: int = 7, pih: str = PIH) -> bytes:
    xml = render_invoice(model, SELLER, icv=icv, pih=pih)
    errors, warnings = validate(xml, pih)
    assert errors == []
    assert warnings == (UNSIGNED_SIMPLIFIED_WARNINGS if model.is_simplified else set())
    return xml


def model_from(**changes: Any) -> InvoiceModel:
    document: dict[str, Any] = {
        "InvoiceNumber": "INV-2026-000123",
        "Type": "Standard",
        "IssueDate": "2026-12-06",
        "IssueTime": "14:03:22",
        "Seller": SELLER_ADDRESS,
        "Buyer": BUYER,
        "Lines": [
            {
                "Name": "قهوة عربية | Arabic coffee",
                "Quantity": "2",
                "UnitPrice": "10.00",
                "VatCategory": "S",
                "VatRate": "15",
            }
        ],
    }
    document.update(changes)
    document = {key: value for key, value in document.items() if value is not None}
    return decode_invoice_model(json.dumps(document, ensure_ascii=False).encode(), now=NOW)


@pytest.mark.parametrize(("doc_type", "kind"), sample_kinds("1100"))
def test_the_six_compliance_samples_pass(doc_type: Any, kind: Any) -> None:
    model = sample_model(kind, doc_type, seller_vat=SELLER.vat, now=NOW)
    xml = assert_valid(model, icv=1, pih=INITIAL_PIH)
    root = etree.fromstring(xml)
    type_code = root.find("cbc:InvoiceTypeCode", XPATH_NS)
    assert type_code is not None
    assert type_code.get("name") == ("0100000" if doc_type == "Standard" else "0200000")
    assert type_code.text == {"Invoice": "388", "CreditNote": "381", "DebitNote": "383"}[kind]
    if kind != "Invoice":
        assert root.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", namespaces=XPATH_NS)
        assert root.findtext("cac:PaymentMeans/cbc:InstructionNote", namespaces=XPATH_NS) == model.reason


def test_document_shape_follows_section_2() -> None:
    model = model_from(
        Kind="CreditNote",
        BillingReference="INV-2026-000100",
        Reason="إرجاع البضاعة | Goods returned",
        Note="ملاحظة",
        Discount={"Amount": "1.00", "VatCategory": "S", "VatRate": "15", "Reason": "Loyalty"},
    )
    xml = assert_valid(model, icv=42)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice ')
    # Arabic is written as UTF-8, not as character references.
    assert "إرجاع البضاعة".encode() in xml
    assert b"&#" not in xml
    root = etree.fromstring(xml)
    assert root.nsmap == {
        None: "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
        "cac": XPATH_NS["cac"],
        "cbc": XPATH_NS["cbc"],
        "ext": XPATH_NS["ext"],
    }
    order = [etree.QName(child).localname for child in root]
    assert order == [
        "ProfileID",
        "ID",
        "UUID",
        "IssueDate",
        "IssueTime",
        "InvoiceTypeCode",
        "Note",
        "DocumentCurrencyCode",
        "TaxCurrencyCode",
        "BillingReference",
        "AdditionalDocumentReference",
        "AdditionalDocumentReference",
        "AccountingSupplierParty",
        "AccountingCustomerParty",
        "Delivery",
        "PaymentMeans",
        "AllowanceCharge",
        "TaxTotal",
        "TaxTotal",
        "LegalMonetaryTotal",
        "InvoiceLine",
    ]
    references = root.findall("cac:AdditionalDocumentReference", XPATH_NS)
    assert references[0].findtext("cbc:ID", namespaces=XPATH_NS) == "ICV"
    assert references[0].findtext("cbc:UUID", namespaces=XPATH_NS) == "42"
    pih = references[1].find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", XPATH_NS)
    assert pih is not None
    assert (pih.text, pih.get("mimeCode")) == (PIH, "text/plain")
    assert root.findtext("cac:Delivery/cbc:ActualDeliveryDate", namespaces=XPATH_NS) == "2026-12-06"
    first_tax_total, second_tax_total = root.findall("cac:TaxTotal", XPATH_NS)
    assert [etree.QName(child).localname for child in first_tax_total] == ["TaxAmount"]
    assert second_tax_total.find("cac:TaxSubtotal", XPATH_NS) is not None
    monetary = root.find("cac:LegalMonetaryTotal", XPATH_NS)
    assert monetary is not None
    assert [(etree.QName(child).localname, child.text) for child in monetary] == [
        ("LineExtensionAmount", "20.00"),
        ("TaxExclusiveAmount", "19.00"),
        ("TaxInclusiveAmount", "21.85"),
        ("AllowanceTotalAmount", "1.00"),
        ("PrepaidAmount", "0.00"),
        ("PayableAmount", "21.85"),
    ]
    # Nothing the stamp adds is there yet.
    for path in ("ext:UBLExtensions", "cac:Signature", "cac:AdditionalDocumentReference[cbc:ID='QR']"):
        assert root.xpath(path, namespaces=XPATH_NS) == []


def test_zero_rated_exempt_and_out_of_scope_lines_with_reasons_and_discounts() -> None:
    lines = [
        {
            "Name": "دواء | Medicine",
            "Quantity": "3",
            "UnitPrice": "12.50",
            "Discount": "2.50",
            "VatCategory": "Z",
            "VatRate": "0",
            "ExemptionReasonCode": "VATEX-SA-35",
        },
        {
            "Name": "رسوم مالية | Finance fee",
            "Quantity": "1",
            "UnitPrice": "99.99",
            "VatCategory": "E",
            "VatRate": "0",
            "ExemptionReasonCode": "VATEX-SA-29",
        },
        {
            "Name": "Coffee beans",
            "Quantity": "1.255",
            "UnitCode": "KGM",
            "UnitPrice": "80.00",
            "Discount": "0.40",
            "VatCategory": "S",
            "VatRate": "15",
        },
        {
            "Name": "Dates",
            "Quantity": "0.333",
            "UnitCode": "KGM",
            "UnitPrice": "2.99",
            "VatCategory": "S",
            "VatRate": "5",
        },
        {
            "Name": "Government fee",
            "Quantity": "1",
            "UnitPrice": "10",
            "VatCategory": "O",
            "VatRate": "0",
            "ExemptionReasonCode": "VATEX-SA-OOS",
            "ExemptionReason": "رسوم حكومية | Government fee",
        },
    ]
    for doc_type in ("Standard", "Simplified"):
        model = model_from(
            Type=doc_type,
            Lines=lines,
            Discount={"Amount": "5.55", "VatCategory": "Z", "VatRate": "0", "Reason": "خصم | Discount"},
        )
        xml = assert_valid(model)
    root = etree.fromstring(xml)
    codes = root.xpath(
        "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode/text()", namespaces=XPATH_NS
    )
    assert codes == ["VATEX-SA-35", "VATEX-SA-29", "VATEX-SA-OOS"]
    line_allowances = root.xpath("cac:InvoiceLine/cac:AllowanceCharge/cbc:Amount/text()", namespaces=XPATH_NS)
    assert line_allowances == ["2.50", "0.40"]
    assert root.xpath("cac:InvoiceLine/cac:Price/cac:AllowanceCharge", namespaces=XPATH_NS) == []
    assert root.xpath("cac:InvoiceLine/cbc:InvoicedQuantity/text()", namespaces=XPATH_NS)[2:4] == [
        "1.255",
        "0.333",
    ]


def test_simplified_with_a_name_only_buyer_and_without_a_buyer() -> None:
    assert_valid(model_from(Type="Simplified", Buyer={"Name": "عميل نقدي"}))
    xml = assert_valid(model_from(Type="Simplified", Buyer=None))
    root = etree.fromstring(xml)
    customer = root.find("cac:AccountingCustomerParty", XPATH_NS)
    assert customer is not None
    assert len(customer) == 0
    assert root.find("cac:Delivery", XPATH_NS) is None


def test_standard_buyer_without_vat_but_with_identification() -> None:
    buyer = {key: value for key, value in BUYER.items() if key != "Vat"}
    buyer["Identification"] = {"Scheme": "NAT", "Id": "1047382915"}
    model = model_from(
        Buyer=buyer,
        Lines=[
            {
                "Name": "تعليم خاص | Tuition",
                "Quantity": "1",
                "UnitPrice": "5000",
                "VatCategory": "Z",
                "VatRate": "0",
                "ExemptionReasonCode": "VATEX-SA-EDU",
            }
        ],
    )
    assert_valid(model)


def test_two_hundred_lines_with_three_decimal_quantities() -> None:
    lines = [
        {
            "Name": f"صنف {number} | Item {number}",
            "Quantity": f"{number % 7 + 1}.{number:03d}"[:5],
            "UnitCode": "KGM",
            "UnitPrice": f"{number % 13 + 0.99:.2f}",
            "VatCategory": "S",
            "VatRate": "15",
            "Discount": "0.01" if number % 5 == 0 else "0",
        }
        for number in range(200)
    ]
    for doc_type in ("Standard", "Simplified"):
        model = model_from(
            Type=doc_type, Lines=lines, Discount={"Amount": "10.00", "VatCategory": "S", "VatRate": "15"}
        )
        assert len(model.lines) == 200
        assert any(line.quantity.as_tuple().exponent == -3 for line in model.lines)
        xml = assert_valid(model)
    assert len(etree.fromstring(xml).findall("cac:InvoiceLine", XPATH_NS)) == 200


def test_the_buyer_must_not_carry_the_sellers_vat_number() -> None:
    model = model_from(Buyer=dict(BUYER, Vat=SELLER.vat))
    with pytest.raises(ValidationFailed) as caught:
        render_invoice(model, SELLER, icv=1, pih=PIH)
    assert [problem.field for problem in caught.value.problems] == ["Buyer.Vat"]


def test_rendering_is_deterministic_for_one_model() -> None:
    model = model_from()
    assert render_invoice(model, SELLER, icv=3, pih=PIH) == render_invoice(model, SELLER, icv=3, pih=PIH)
    assert model.lines[0].unit_price == Decimal("10.00")
