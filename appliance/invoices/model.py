"""The invoice model a POS sends in `Model` format, and its decoder with every refusal named by path.

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
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, cast, get_args

import msgspec

from appliance.errors import ValidationFailed
from appliance.invoices.amounts import exact_product, line_net
from appliance.invoices.decode import BodyReader, JsonObject, parse_json_object
from appliance.x509.countries import ISO_3166_ALPHA2

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
_ADDRESS = ("StreetName", "BuildingNumber", "CitySubdivisionName", "CityName", "PostalZone", "CountryCode")
_SELLER = (*_ADDRESS, "Identification")
_BUYER = ("Name", "Vat", *_ADDRESS, "Identification")
_IDENTIFICATION = ("Scheme", "Id")
_LINE = (
    "Name",
    "Quantity",
    "UnitCode",
    "UnitPrice",
    "Discount",
    "VatCategory",
    "VatRate",
    "ExemptionReasonCode",
    "ExemptionReason",
)
_DISCOUNT = ("Amount", "VatCategory", "VatRate", "Reason")

_VAT_NUMBER = re.compile(r"3[0-9]{13}3")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_FIVE_DIGITS = re.compile(r"[0-9]{5}")
_UNIT_CODE = re.compile(r"[A-Za-z0-9]{1,3}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_LONG_TEXT = 1000
_SHORT_TEXT = 127


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
    number = reader.text(top, "InvoiceNumber", "", required=True, max_chars=_SHORT_TEXT)
    document_uuid = _read_uuid(reader, top)
    doc_type = reader.code(top, "Type", "", get_args(InvoiceType))
    kind = reader.code(top, "Kind", "", get_args(InvoiceKind), default="Invoice")
    issue_date = _read_date(reader, top, "IssueDate", default=now.date())
    issue_time = _read_time(reader, top, "IssueTime", default=now.time().replace(microsecond=0))
    if issue_date is not None and issue_date > now.date():
        reader.problem("IssueDate", f"must not be after today ({now.date().isoformat()} in Riyadh)")
    currency = _read_currency(reader, top)
    payment_means = reader.code(top, "PaymentMeans", "", PAYMENT_MEANS_CODES, default="10")
    billing_reference = reader.text(top, "BillingReference", "", required=False, max_chars=_SHORT_TEXT)
    reason = reader.text(top, "Reason", "", required=False, max_chars=_LONG_TEXT, multiline=True)
    supply_date = _read_date(reader, top, "SupplyDate", default=None)
    note = reader.text(top, "Note", "", required=False, max_chars=_LONG_TEXT, multiline=True)
    if kind in ("CreditNote", "DebitNote"):
        for field, value in (("BillingReference", billing_reference), ("Reason", reason)):
            if value is None and top.get(field) is None:
                reader.problem(field, "is required for a credit or debit note", "Missing-Field")
    elif kind == "Invoice":
        for field in ("BillingReference", "Reason"):
            if top.get(field) is not None:
                reader.problem(field, "only credit and debit notes carry it (set Kind)")

    seller = _read_seller(reader, top)
    buyer = _read_buyer(reader, top, standard=doc_type == "Standard")
    lines = _read_lines(reader, top)
    discount = _read_discount(reader, top, lines)
    if lines:
        _check_exemption_consistency(reader, lines, buyer, simplified=doc_type == "Simplified")

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


def _read_address(
    reader: BodyReader, section: dict[str, Any], path: str, *, required: tuple[str, ...]
) -> dict[str, str | None]:
    values = {
        "StreetName": reader.text(
            section, "StreetName", path, required="StreetName" in required, max_chars=_LONG_TEXT
        ),
        "BuildingNumber": reader.text(
            section, "BuildingNumber", path, required="BuildingNumber" in required, max_chars=_SHORT_TEXT
        ),
        "CitySubdivisionName": reader.text(
            section,
            "CitySubdivisionName",
            path,
            required="CitySubdivisionName" in required,
            max_chars=_SHORT_TEXT,
        ),
        "CityName": reader.text(
            section, "CityName", path, required="CityName" in required, max_chars=_SHORT_TEXT
        ),
        "PostalZone": reader.text(
            section, "PostalZone", path, required="PostalZone" in required, max_chars=_SHORT_TEXT
        ),
    }
    country = section.get("CountryCode")
    if country is None:
        values["CountryCode"] = None
    elif isinstance(country, str) and country.strip().upper() in ISO_3166_ALPHA2:
        values["CountryCode"] = country.strip().upper()
    else:
        reader.problem(f"{path}.CountryCode", "must be an ISO 3166 two-letter country code such as SA")
        values["CountryCode"] = None
    return values


def _read_identification(
    reader: BodyReader, section: dict[str, Any], path: str, schemes: tuple[str, ...]
) -> PartyIdentification | None:
    ident_path = f"{path}.Identification"
    ident = reader.optional_section(section, "Identification", path, _IDENTIFICATION)
    if ident is None:
        return None
    scheme = reader.code(ident, "Scheme", ident_path, schemes)
    ident_id = reader.text(
        ident,
        "Id",
        ident_path,
        required=True,
        max_chars=_SHORT_TEXT,
        pattern=_ALPHANUMERIC,
        pattern_text="letters and digits only (BR-KSA-08, BR-KSA-14)",
    )
    if scheme is None or ident_id is None:
        return None
    return PartyIdentification(scheme=scheme, id=ident_id)


def _read_seller(reader: BodyReader, top: dict[str, Any]) -> SellerParty | None:
    if top.get("Seller") is None:
        reader.problem("Seller", "is required (the seller's address and identification)", "Missing-Field")
        return None
    section = reader.section(top["Seller"], "Seller", _SELLER)
    if section is None:
        return None
    address = _read_address(
        reader,
        section,
        "Seller",
        required=("StreetName", "BuildingNumber", "CitySubdivisionName", "CityName", "PostalZone"),
    )
    country = address["CountryCode"] or ("SA" if section.get("CountryCode") is None else None)
    building = address["BuildingNumber"]
    if country == "SA" and building is not None and not _FOUR_DIGITS.fullmatch(building):
        reader.problem("Seller.BuildingNumber", "must be 4 digits for a Saudi address (BR-KSA-37)")
    postal = address["PostalZone"]
    if country == "SA" and postal is not None and not _FIVE_DIGITS.fullmatch(postal):
        reader.problem("Seller.PostalZone", "must be 5 digits for a Saudi address (BR-KSA-66)")
    identification = _read_identification(reader, section, "Seller", SELLER_ID_SCHEMES)
    if section.get("Identification") is None:
        reader.problem("Seller.Identification", "is required (for example a CRN; BR-KSA-08)", "Missing-Field")
    street, district, city = address["StreetName"], address["CitySubdivisionName"], address["CityName"]
    if (
        identification is None
        or country is None
        or street is None
        or building is None
        or district is None
        or city is None
        or postal is None
    ):
        return None
    return SellerParty(
        street_name=street,
        building_number=building,
        city_subdivision_name=district,
        city_name=city,
        postal_zone=postal,
        country_code=country,
        identification=identification,
    )


def _read_buyer(reader: BodyReader, top: dict[str, Any], *, standard: bool) -> BuyerParty | None:
    if top.get("Buyer") is None:
        if standard:
            reader.problem("Buyer", "is required for a Standard (B2B) document", "Missing-Field")
        return None
    section = reader.section(top["Buyer"], "Buyer", _BUYER)
    if section is None:
        return None
    name = reader.text(section, "Name", "Buyer", required=standard, max_chars=_LONG_TEXT)
    vat = reader.text(
        section,
        "Vat",
        "Buyer",
        required=False,
        max_chars=15,
        pattern=_VAT_NUMBER,
        pattern_text="a VAT number of 15 digits starting and ending with 3",
    )
    country_given = section.get("CountryCode")
    country_preview = country_given.strip().upper() if isinstance(country_given, str) else None
    required: tuple[str, ...] = ()
    if standard:
        # BR-KSA-10 for every buyer, BR-KSA-63 adds the Saudi national address parts.
        required = ("StreetName", "CityName")
        if country_preview == "SA":
            required += ("BuildingNumber", "PostalZone", "CitySubdivisionName")
    address = _read_address(reader, section, "Buyer", required=required)
    if standard and country_given is None:
        reader.problem("Buyer.CountryCode", "is required for a Standard (B2B) document", "Missing-Field")
    postal = address["PostalZone"]
    if address["CountryCode"] == "SA" and postal is not None and not _FIVE_DIGITS.fullmatch(postal):
        reader.problem("Buyer.PostalZone", "must be 5 digits for a Saudi address (BR-KSA-67)")
    identification = _read_identification(reader, section, "Buyer", BUYER_ID_SCHEMES)
    if standard and vat is None and section.get("Vat") is None and section.get("Identification") is None:
        reader.problem(
            "Buyer.Identification",
            "is required when the buyer has no VAT number (BR-KSA-81)",
            "Missing-Field",
        )
    return BuyerParty(
        name=name,
        vat=vat,
        street_name=address["StreetName"],
        building_number=address["BuildingNumber"],
        city_subdivision_name=address["CitySubdivisionName"],
        city_name=address["CityName"],
        postal_zone=postal,
        country_code=address["CountryCode"],
        identification=identification,
    )


def _read_rate(
    reader: BodyReader, section: dict[str, Any], path: str, category: str | None
) -> Decimal | None:
    rate = reader.decimal(
        section, "VatRate", path, required=True, max_places=2, upper_bound=Decimal(101), allow_zero=True
    )
    if rate is None or category is None:
        return rate
    if category == "S" and rate not in STANDARD_RATES:
        reader.problem(f"{path}.VatRate", "must be 15 or 5 for category S (BR-KSA-84)")
        return None
    if category != "S" and rate != 0:
        reader.problem(f"{path}.VatRate", f"must be 0 for category {category}")
        return None
    return rate


def _read_lines(reader: BodyReader, top: dict[str, Any]) -> list[InvoiceLine] | None:
    items = reader.array(top, "Lines", "")
    if items is None:
        return None
    if not items:
        reader.problem("Lines", "must hold at least one line")
        return None
    if len(items) > MAX_LINES:
        reader.problem("Lines", f"must hold at most {MAX_LINES:,} lines (got {len(items):,})")
        return None
    lines: list[InvoiceLine] = []
    complete = True
    for index, item in enumerate(items):
        line = _read_line(reader, item, f"Lines[{index}]")
        if line is None:
            complete = False
        else:
            lines.append(line)
    return lines if complete else None


def _read_line(reader: BodyReader, item: object, path: str) -> InvoiceLine | None:
    section = reader.section(item, path, _LINE)
    if section is None:
        return None
    name = reader.text(section, "Name", path, required=True, max_chars=_LONG_TEXT, min_chars=3)
    quantity = reader.decimal(
        section,
        "Quantity",
        path,
        required=True,
        max_places=QUANTITY_PLACES,
        upper_bound=MAX_QUANTITY,
        allow_zero=False,
    )
    unit_code = reader.text(
        section,
        "UnitCode",
        path,
        required=False,
        max_chars=3,
        pattern=_UNIT_CODE,
        pattern_text="a UN/ECE Recommendation 20 unit code such as PCE, KGM or LTR",
    )
    price = reader.decimal(
        section,
        "UnitPrice",
        path,
        required=True,
        max_places=MONEY_PLACES,
        upper_bound=MAX_PRICE,
        allow_zero=True,
    )
    discount = reader.decimal(
        section,
        "Discount",
        path,
        required=False,
        max_places=MONEY_PLACES,
        upper_bound=MAX_PRICE * MAX_QUANTITY,
        allow_zero=True,
        default=Decimal(0),
    )
    category = reader.code(section, "VatCategory", path, get_args(VatCategory))
    rate = _read_rate(reader, section, path, category)
    code = reader.text(section, "ExemptionReasonCode", path, required=False, max_chars=_SHORT_TEXT)
    text = reader.text(section, "ExemptionReason", path, required=False, max_chars=_LONG_TEXT, multiline=True)
    if code is not None:
        code = code.strip().upper()
    if category is not None and category != "S":
        if code is None:
            reader.problem(
                f"{path}.ExemptionReasonCode",
                f"is required for category {category} (a VATEX-SA-... code)",
                "Missing-Field",
            )
        elif EXEMPTION_CODES.get(code) != category:
            fitting = ", ".join(c for c, cat in EXEMPTION_CODES.items() if cat == category)
            reader.problem(f"{path}.ExemptionReasonCode", f"must be one of {fitting} for category {category}")
            code = None
        elif text is None:
            text = EXEMPTION_TEXTS.get(code)
            if text is None:
                reader.problem(
                    f"{path}.ExemptionReason", f"is required for exemption code {code}", "Missing-Field"
                )
    elif category == "S":
        for field, value in (("ExemptionReasonCode", code), ("ExemptionReason", text)):
            if value is not None:
                reader.problem(f"{path}.{field}", "must be left out for category S (BR-S-10)")
    if (
        quantity is not None
        and price is not None
        and discount is not None
        and discount > exact_product(quantity, price)
    ):
        reader.problem(f"{path}.Discount", "must not exceed Quantity x UnitPrice")
        discount = None
    if (
        name is None
        or quantity is None
        or price is None
        or discount is None
        or category is None
        or rate is None
    ):
        return None
    return InvoiceLine(
        name=name,
        quantity=quantity,
        unit_code=unit_code or "PCE",
        unit_price=price,
        discount=discount,
        vat_category=cast(VatCategory, category),
        vat_rate=rate,
        exemption_reason_code=code if category != "S" else None,
        exemption_reason=text if category != "S" else None,
    )


def _read_discount(
    reader: BodyReader, top: dict[str, Any], lines: list[InvoiceLine] | None
) -> DocumentDiscount | None:
    section = reader.optional_section(top, "Discount", "", _DISCOUNT)
    if section is None:
        return None
    amount = reader.decimal(
        section,
        "Amount",
        "Discount",
        required=True,
        max_places=MONEY_PLACES,
        upper_bound=MAX_PRICE * MAX_QUANTITY,
        allow_zero=True,
    )
    category = reader.code(section, "VatCategory", "Discount", get_args(VatCategory))
    rate = _read_rate(reader, section, "Discount", category)
    reason = reader.text(section, "Reason", "Discount", required=False, max_chars=_LONG_TEXT)
    if amount is None or category is None or rate is None:
        return None
    if lines is not None:
        group = [line for line in lines if line.vat_category == category and line.vat_rate == rate]
        if not group:
            reader.problem(
                "Discount.VatCategory",
                f"no line has category {category} at rate {rate}: a document discount reduces the "
                "taxable amount of its own category",
            )
            return None
        available = sum((line_net(line) for line in group), Decimal(0))
        if amount > available:
            reader.problem(
                "Discount.Amount",
                f"must not exceed the net total of the category {category} {rate}% lines ({available:.2f})",
            )
            return None
    return DocumentDiscount(
        amount=amount, vat_category=cast(VatCategory, category), vat_rate=rate, reason=reason or "Discount"
    )


def _check_exemption_consistency(
    reader: BodyReader, lines: list[InvoiceLine], buyer: BuyerParty | None, *, simplified: bool
) -> None:
    first_code: dict[tuple[str, Decimal], tuple[int, str | None]] = {}
    for index, line in enumerate(lines):
        key = (line.vat_category, line.vat_rate)
        if key not in first_code:
            first_code[key] = (index, line.exemption_reason_code)
        elif first_code[key][1] != line.exemption_reason_code:
            other, code = first_code[key]
            reader.problem(
                f"Lines[{index}].ExemptionReasonCode",
                f"must equal Lines[{other}]'s {code}: lines of one category share one exemption reason",
            )
        if line.exemption_reason_code in CITIZEN_EXEMPTIONS:
            path = f"Lines[{index}].ExemptionReasonCode"
            if buyer is None or buyer.identification is None or buyer.identification.scheme != "NAT":
                reader.problem(
                    path,
                    f"{line.exemption_reason_code} needs the buyer's national ID (Buyer.Identification "
                    "with Scheme NAT; BR-KSA-49)",
                )
            if simplified and (buyer is None or buyer.name is None):
                reader.problem(path, f"{line.exemption_reason_code} needs Buyer.Name (BR-KSA-25)")
