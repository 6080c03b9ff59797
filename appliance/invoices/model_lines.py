"""Reading the model's lines and document discount (quantities, prices, VAT categories, rates and
exemption reasons) with every problem named by its path (`Lines[2].VatRate`)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast, get_args

from appliance.invoices.amounts import exact_product, line_net
from appliance.invoices.decode import BodyReader
from appliance.invoices.model import (
    CITIZEN_EXEMPTIONS,
    EXEMPTION_CODES,
    EXEMPTION_TEXTS,
    LONG_TEXT,
    MAX_LINES,
    MAX_PRICE,
    MAX_QUANTITY,
    MONEY_PLACES,
    QUANTITY_PLACES,
    SHORT_TEXT,
    STANDARD_RATES,
    BuyerParty,
    DocumentDiscount,
    InvoiceLine,
    VatCategory,
)

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

_UNIT_CODE = re.compile(r"[A-Za-z0-9]{1,3}")


def read_rate(reader: BodyReader, section: dict[str, Any], path: str, category: str | None) -> Decimal | None:
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


def read_lines(reader: BodyReader, top: dict[str, Any]) -> list[InvoiceLine] | None:
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
    name = reader.text(section, "Name", path, required=True, max_chars=LONG_TEXT, min_chars=3)
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
    rate = read_rate(reader, section, path, category)
    code = reader.text(section, "ExemptionReasonCode", path, required=False, max_chars=SHORT_TEXT)
    text = reader.text(section, "ExemptionReason", path, required=False, max_chars=LONG_TEXT, multiline=True)
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


def read_discount(
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
    rate = read_rate(reader, section, "Discount", category)
    reason = reader.text(section, "Reason", "Discount", required=False, max_chars=LONG_TEXT)
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


def check_exemption_consistency(
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
