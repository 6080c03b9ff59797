"""The unsigned UBL 2.1 document for an invoice model (zatca-invoice-signing.md section 2).

The tree is built with lxml (never a text template), in the XSD's element order (2.2). The output
has no `ext:UBLExtensions`, no QR reference and no `cac:Signature`: the stamp inserts those three
without touching any other byte, so the hash of this output equals the signed document's hash.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from appliance.errors import FieldProblem, ValidationFailed
from appliance.invoices.amounts import InvoiceTotals, compute_totals, money, percent, quantity_text
from appliance.invoices.model import BuyerParty, InvoiceModel, SellerIdentity, SellerParty
from appliance.invoices.namespaces import CAC, CBC, INVOICE_NS, NSMAP_ROOT

_TYPE_CODES = {"Invoice": "388", "CreditNote": "381", "DebitNote": "383"}
_SUBTYPE_NAMES = {"Standard": "0100000", "Simplified": "0200000"}
_CURRENCY = "SAR"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _cac(parent: etree._Element, local: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{local}")


def _cbc(parent: etree._Element, local: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{local}", attributes)
    element.text = text
    return element


def _amount(parent: etree._Element, local: str, value: Decimal) -> etree._Element:
    return _cbc(parent, local, money(value), currencyID=_CURRENCY)


def render_invoice(model: InvoiceModel, seller: SellerIdentity, *, icv: int, pih: str) -> bytes:
    """UTF-8 bytes with an XML declaration; raises ValidationFailed when the buyer's VAT is the seller's."""
    if model.buyer is not None and model.buyer.vat is not None and model.buyer.vat == seller.vat:
        raise ValidationFailed(
            [FieldProblem("Buyer.Vat", "must differ from the seller's VAT number (BR-CUSTOM-VALIDATION-01)")]
        )
    if icv < 1:
        raise ValueError(f"ICV starts at 1, got {icv}")
    totals = compute_totals(model)
    root = etree.Element(f"{{{INVOICE_NS}}}Invoice", nsmap=NSMAP_ROOT)

    _cbc(root, "ProfileID", "reporting:1.0")
    _cbc(root, "ID", model.invoice_number)
    _cbc(root, "UUID", model.uuid)
    _cbc(root, "IssueDate", model.issue_date.isoformat())
    _cbc(root, "IssueTime", model.issue_time.strftime("%H:%M:%S"))
    _cbc(root, "InvoiceTypeCode", _TYPE_CODES[model.kind], name=_SUBTYPE_NAMES[model.type])
    if model.note is not None:
        _cbc(root, "Note", model.note)
    _cbc(root, "DocumentCurrencyCode", _CURRENCY)
    _cbc(root, "TaxCurrencyCode", _CURRENCY)
    if model.billing_reference is not None:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", model.billing_reference)

    icv_reference = _cac(root, "AdditionalDocumentReference")
    _cbc(icv_reference, "ID", "ICV")
    _cbc(icv_reference, "UUID", str(icv))
    pih_reference = _cac(root, "AdditionalDocumentReference")
    _cbc(pih_reference, "ID", "PIH")
    _cbc(_cac(pih_reference, "Attachment"), "EmbeddedDocumentBinaryObject", pih, mimeCode="text/plain")

    _seller_party(_cac(_cac(root, "AccountingSupplierParty"), "Party"), model.seller, seller)
    customer = _cac(root, "AccountingCustomerParty")
    if model.buyer is not None:
        _buyer_party(_cac(customer, "Party"), model.buyer)

    supply_date = model.supply_date or (model.issue_date if not model.is_simplified else None)
    if supply_date is not None:
        _cbc(_cac(root, "Delivery"), "ActualDeliveryDate", supply_date.isoformat())

    payment = _cac(root, "PaymentMeans")
    _cbc(payment, "PaymentMeansCode", model.payment_means)
    if model.reason is not None:
        _cbc(payment, "InstructionNote", model.reason)

    if model.discount is not None:
        allowance = _cac(root, "AllowanceCharge")
        _cbc(allowance, "ChargeIndicator", "false")
        _cbc(allowance, "AllowanceChargeReason", model.discount.reason)
        _amount(allowance, "Amount", model.discount.amount)
        _tax_category(allowance, model.discount.vat_category, percent(model.discount.vat_rate))

    _tax_totals(root, totals)
    _monetary_total(root, totals)
    _lines(root, model, totals)

    return _XML_DECLARATION + etree.tostring(root, encoding="unicode", pretty_print=True).encode("utf-8")


def _address_parts(details: SellerParty | BuyerParty) -> tuple[tuple[str, str | None], ...]:
    # XSD order: StreetName, AdditionalStreetName, BuildingNumber, PlotIdentification,
    # CitySubdivisionName, CityName, PostalZone, CountrySubentity, Country.
    return (
        ("StreetName", details.street_name),
        ("BuildingNumber", details.building_number),
        ("CitySubdivisionName", details.city_subdivision_name),
        ("CityName", details.city_name),
        ("PostalZone", details.postal_zone),
    )


def _postal_address(party: etree._Element, details: SellerParty | BuyerParty) -> None:
    address = _cac(party, "PostalAddress")
    for local, value in _address_parts(details):
        if value is not None:
            _cbc(address, local, value)
    if details.country_code is not None:
        _cbc(_cac(address, "Country"), "IdentificationCode", details.country_code)


def _party_tax_scheme(party: etree._Element, vat: str) -> None:
    scheme = _cac(party, "PartyTaxScheme")
    _cbc(scheme, "CompanyID", vat)
    _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")


def _seller_party(party: etree._Element, details: SellerParty, identity: SellerIdentity) -> None:
    identification = _cac(party, "PartyIdentification")
    _cbc(identification, "ID", details.identification.id, schemeID=details.identification.scheme)
    _postal_address(party, details)
    _party_tax_scheme(party, identity.vat)
    _cbc(_cac(party, "PartyLegalEntity"), "RegistrationName", identity.name)


def _buyer_party(party: etree._Element, buyer: BuyerParty) -> None:
    if buyer.identification is not None:
        identification = _cac(party, "PartyIdentification")
        _cbc(identification, "ID", buyer.identification.id, schemeID=buyer.identification.scheme)
    if buyer.country_code is not None or any(value is not None for _, value in _address_parts(buyer)):
        _postal_address(party, buyer)
    if buyer.vat is not None:
        _party_tax_scheme(party, buyer.vat)
    if buyer.name is not None:
        _cbc(_cac(party, "PartyLegalEntity"), "RegistrationName", buyer.name)


def _tax_category(
    parent: etree._Element,
    category: str,
    rate: str,
    *,
    exemption_code: str | None = None,
    exemption_text: str | None = None,
) -> None:
    tax_category = _cac(parent, "TaxCategory")
    _cbc(tax_category, "ID", category, schemeID="UN/ECE 5305", schemeAgencyID="6")
    _cbc(tax_category, "Percent", rate)
    if exemption_code is not None:
        _cbc(tax_category, "TaxExemptionReasonCode", exemption_code)
    if exemption_text is not None:
        _cbc(tax_category, "TaxExemptionReason", exemption_text)
    _cbc(_cac(tax_category, "TaxScheme"), "ID", "VAT", schemeID="UN/ECE 5153", schemeAgencyID="6")


def _tax_totals(root: etree._Element, totals: InvoiceTotals) -> None:
    # First the VAT total in the accounting currency alone (BT-111), then the breakdown (BT-110):
    # QR tag 5 reads the first one.
    _amount(_cac(root, "TaxTotal"), "TaxAmount", totals.vat_total)
    breakdown = _cac(root, "TaxTotal")
    _amount(breakdown, "TaxAmount", totals.vat_total)
    for category in totals.categories:
        subtotal = _cac(breakdown, "TaxSubtotal")
        _amount(subtotal, "TaxableAmount", category.taxable)
        _amount(subtotal, "TaxAmount", category.vat)
        _tax_category(
            subtotal,
            category.category,
            percent(category.rate),
            exemption_code=category.exemption_reason_code,
            exemption_text=category.exemption_reason,
        )


def _monetary_total(root: etree._Element, totals: InvoiceTotals) -> None:
    monetary = _cac(root, "LegalMonetaryTotal")
    _amount(monetary, "LineExtensionAmount", totals.line_extension)
    _amount(monetary, "TaxExclusiveAmount", totals.tax_exclusive)
    _amount(monetary, "TaxInclusiveAmount", totals.tax_inclusive)
    _amount(monetary, "AllowanceTotalAmount", totals.allowance_total)
    _amount(monetary, "PrepaidAmount", Decimal(0))
    _amount(monetary, "PayableAmount", totals.payable)


def _lines(root: etree._Element, model: InvoiceModel, totals: InvoiceTotals) -> None:
    for number, (line, amounts) in enumerate(zip(model.lines, totals.lines, strict=True), start=1):
        element = _cac(root, "InvoiceLine")
        _cbc(element, "ID", str(number))
        _cbc(element, "InvoicedQuantity", quantity_text(line.quantity), unitCode=line.unit_code)
        _amount(element, "LineExtensionAmount", amounts.net)
        if line.discount > 0:
            allowance = _cac(element, "AllowanceCharge")
            _cbc(allowance, "ChargeIndicator", "false")
            _cbc(allowance, "AllowanceChargeReason", "Discount")
            _amount(allowance, "Amount", line.discount)
        line_tax = _cac(element, "TaxTotal")
        _amount(line_tax, "TaxAmount", amounts.vat)
        _amount(line_tax, "RoundingAmount", amounts.with_vat)
        item = _cac(element, "Item")
        _cbc(item, "Name", line.name)
        classified = _cac(item, "ClassifiedTaxCategory")
        _cbc(classified, "ID", line.vat_category)
        _cbc(classified, "Percent", percent(line.vat_rate))
        _cbc(_cac(classified, "TaxScheme"), "ID", "VAT")
        # No price-level AllowanceCharge: SDK 3.4.8 refuses a price-level charge (BR-KSA-EN16931-06),
        # and a line discount is a line allowance above.
        _amount(_cac(element, "Price"), "PriceAmount", line.unit_price)
