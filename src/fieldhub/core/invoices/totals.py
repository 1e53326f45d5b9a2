"""Invoice arithmetic, pure and exact: how lines, discount and tax make a total.

The rules, in order (every amount a Decimal; "round" is half-up to the cent, core.money.to_money):

1. line amount   = round(quantity × unit_price − line discount). A line discount may not exceed
                   quantity × unit_price, so no line is negative.
2. subtotal      = Σ line amounts (already rounded, so the lines printed add up to the subtotal).
3. discount      = the invoice-level discount, 0 ≤ discount ≤ subtotal (refused otherwise, never clamped).
4. tax           = round(taxable × (subtotal − discount) / subtotal × rate / 100), where taxable = Σ amounts of
                   taxable lines. The invoice discount is allocated pro rata over all lines by amount, so the
                   taxable lines carry the taxable share of it. One rounding, at the end, on the exact product
                   (computed at 60 digits so no intermediate rounding can move a half cent).
                   No tax rate, no taxable lines or a zero subtotal: tax = 0.
5. total         = subtotal − discount + tax.
6. amount paid   = Σ succeeded payments − Σ their refunds; balance = total − amount paid, never negative
                   (overpayment is refused). A VOID invoice owes nothing: its balance is 0.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from fieldhub.core.money import ZERO, to_money


@dataclass(frozen=True)
class LineFigures:
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    taxable: bool

    @property
    def gross(self) -> Decimal:
        return self.quantity * self.unit_price

    @property
    def amount(self) -> Decimal:
        return to_money(self.gross - self.discount)


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    taxable: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


def line_amount(quantity: Decimal, unit_price: Decimal, discount: Decimal = ZERO) -> Decimal:
    return to_money(quantity * unit_price - discount)


def compute_totals(lines: Iterable[LineFigures], discount: Decimal, rate_percent: Decimal | None) -> Totals:
    """Rules 1 to 5 above. Raises ValueError if the discount exceeds the subtotal or is negative."""
    lines = list(lines)
    subtotal = sum((line.amount for line in lines), ZERO)
    taxable = sum((line.amount for line in lines if line.taxable), ZERO)
    if discount < 0 or discount > subtotal:
        raise ValueError("discount must be between 0 and the subtotal")
    tax = ZERO
    if rate_percent and taxable and subtotal:
        with decimal.localcontext() as exact:
            exact.prec = 60
            tax = to_money(taxable * (subtotal - discount) * rate_percent / (subtotal * 100))
    return Totals(
        subtotal=to_money(subtotal),
        taxable=to_money(taxable),
        discount=to_money(discount),
        tax=tax,
        total=to_money(subtotal - discount + tax),
    )
