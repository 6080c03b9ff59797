"""Every amount of a document, computed by the appliance (zatca-invoice-signing.md 2.8).

Decimal arithmetic, half-up to 2 decimals, in the order the section recommends:

- line net    = round2(Quantity x UnitPrice - Discount)          BR-KSA-EN16931-11, BR-DEC-23
- line VAT    = round2(line net x rate / 100)                    KSA-11
- line total  = line net + line VAT (`RoundingAmount`)           BR-KSA-51
- per (category, rate), in order of first appearance:
  taxable     = sum of its line nets - the document discount of that (category, rate)   BR-S-08/Z-08/E-08
  VAT         = round2(taxable x rate / 100), not the sum of rounded line VATs           BR-S-09/CO-17
- LineExtension = sum of line nets; AllowanceTotal = document discount;
  TaxExclusive  = sum of taxable; TaxInclusive = TaxExclusive + sum of category VAT (BR-CO-15);
  Payable       = TaxInclusive (no prepayment, no rounding adjustment).

`money()` prints an amount with exactly two decimals; the renderer writes those strings and the
QR builder later reads the very same text from the XML.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from appliance.invoices.model import InvoiceLine, InvoiceModel, VatCategory

_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
# Wide enough for 10,000 lines of the largest quantity x price the model admits, exactly.
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_UP)


def round2(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP, context=_CONTEXT)


def money(value: Decimal) -> str:
    """`12.30`: two decimals, never an exponent."""
    return format(round2(value), "f")


def percent(rate: Decimal) -> str:
    """`15.00`: VAT rates as the SDK samples print them (BR-KSA-DEC-02 allows at most two decimals)."""
    return money(rate)


def quantity_text(quantity: Decimal) -> str:
    """The quantity as the POS gave it (`1.500` stays `1.500`), without an exponent."""
    return format(quantity, "f")


def exact_product(a: Decimal, b: Decimal) -> Decimal:
    """a x b without the default context's 28-digit rounding."""
    return _CONTEXT.multiply(a, b)


def line_net(line: InvoiceLine) -> Decimal:
    return round2(_CONTEXT.subtract(exact_product(line.quantity, line.unit_price), line.discount))


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = _CONTEXT.add(total, value)
    return total


def _vat(base: Decimal, rate: Decimal) -> Decimal:
    return round2(_CONTEXT.divide(_CONTEXT.multiply(base, rate), _HUNDRED))


class LineAmounts(msgspec.Struct, frozen=True, kw_only=True):
    net: Decimal
    vat: Decimal
    with_vat: Decimal


class CategoryTotal(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    rate: Decimal
    taxable: Decimal
    vat: Decimal
    allowance: Decimal
    exemption_reason_code: str | None
    exemption_reason: str | None


class InvoiceTotals(msgspec.Struct, frozen=True, kw_only=True):
    lines: tuple[LineAmounts, ...]
    categories: tuple[CategoryTotal, ...]
    line_extension: Decimal
    allowance_total: Decimal
    tax_exclusive: Decimal
    vat_total: Decimal
    tax_inclusive: Decimal
    payable: Decimal


def compute_totals(model: InvoiceModel) -> InvoiceTotals:
    lines: list[LineAmounts] = []
    nets: dict[tuple[VatCategory, Decimal], list[Decimal]] = {}
    reasons: dict[tuple[VatCategory, Decimal], tuple[str | None, str | None]] = {}
    for line in model.lines:
        net = line_net(line)
        vat = _vat(net, line.vat_rate)
        lines.append(LineAmounts(net=net, vat=vat, with_vat=net + vat))
        key = (line.vat_category, line.vat_rate)
        nets.setdefault(key, []).append(net)
        reasons.setdefault(key, (line.exemption_reason_code, line.exemption_reason))

    discount = model.discount
    categories: list[CategoryTotal] = []
    for key, category_nets in nets.items():
        category, rate = key
        allowance = Decimal("0.00")
        if discount is not None and (discount.vat_category, discount.vat_rate) == key:
            allowance = round2(discount.amount)
        taxable = round2(_CONTEXT.subtract(_sum(category_nets), allowance))
        code, reason = reasons[key]
        categories.append(
            CategoryTotal(
                category=category,
                rate=rate,
                taxable=taxable,
                vat=_vat(taxable, rate),
                allowance=allowance,
                exemption_reason_code=code,
                exemption_reason=reason,
            )
        )

    tax_exclusive = round2(_sum(c.taxable for c in categories))
    vat_total = round2(_sum(c.vat for c in categories))
    tax_inclusive = round2(_CONTEXT.add(tax_exclusive, vat_total))
    return InvoiceTotals(
        lines=tuple(lines),
        categories=tuple(categories),
        line_extension=round2(_sum(line.net for line in lines)),
        allowance_total=round2(discount.amount) if discount is not None else Decimal("0.00"),
        tax_exclusive=tax_exclusive,
        vat_total=vat_total,
        tax_inclusive=tax_inclusive,
        payable=tax_inclusive,
    )
