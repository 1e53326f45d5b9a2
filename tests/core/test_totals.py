"""Invoice arithmetic as properties: exact Decimal, stated rounding, total = subtotal − discount + tax."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldhub.core.invoices.totals import LineFigures, compute_totals, line_amount
from fieldhub.core.money import CENT

D = Decimal
quantities = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)
rates = st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False))


@st.composite
def lines(draw):
    quantity, price = draw(quantities), draw(prices)
    gross = (quantity * price).quantize(CENT)
    discount = draw(st.decimals(min_value=0, max_value=gross, places=2, allow_nan=False, allow_infinity=False))
    return LineFigures(quantity, price, discount, draw(st.booleans()))


@given(st.lists(lines(), min_size=1, max_size=12), st.data(), rates)
def test_total_is_subtotal_minus_discount_plus_tax(figures, data, rate):
    subtotal = sum((f.amount for f in figures), D("0"))
    discount = data.draw(st.decimals(min_value=0, max_value=subtotal, places=2, allow_nan=False, allow_infinity=False))
    totals = compute_totals(figures, discount, rate)
    for value in (totals.subtotal, totals.discount, totals.tax, totals.total):
        assert isinstance(value, Decimal)
        assert value == value.quantize(CENT) and value >= 0
    assert totals.subtotal == subtotal
    assert totals.total == totals.subtotal - totals.discount + totals.tax
    assert totals.total >= 0
    if not rate or not any(f.taxable for f in figures):
        assert totals.tax == 0
    else:
        # The tax is within half a cent of the exact pro-rata figure.
        exact = totals.taxable * (subtotal - discount) / subtotal * rate / 100 if subtotal else D(0)
        assert abs(totals.tax - exact) <= D("0.005")


@given(st.lists(lines(), min_size=1, max_size=8), rates, st.lists(prices, max_size=6))
def test_balance_never_negative_when_payments_are_capped(figures, rate, attempts):
    """What record_payment enforces: a payment above the balance is refused, so the balance stays ≥ 0."""
    totals = compute_totals(figures, D("0.00"), rate)
    balance = totals.total
    for amount in attempts:
        if D(0) < amount <= balance:
            balance -= amount
        assert balance >= 0
    assert balance == balance.quantize(CENT)


def test_rounding_is_half_up_and_stated():
    assert line_amount(D("0.5"), D("0.25")) == D("0.13")  # 0.125 → 0.13, not banker's 0.12
    assert line_amount(D("3"), D("0.335")) == D("1.01")  # 1.005 → 1.01
    # 8.25 % of 49.50 is 4.08375 → 4.08; of 50.00 is 4.125 → 4.13 (half up)
    assert compute_totals([LineFigures(D(1), D("50.00"), D(0), True)], D(0), D("8.25")).tax == D("4.13")


def test_discount_allocated_pro_rata_to_taxable_lines():
    figures = [LineFigures(D(1), D("100.00"), D(0), True), LineFigures(D(1), D("100.00"), D(0), False)]
    totals = compute_totals(figures, D("50.00"), D("10"))
    # Half the subtotal is taxable, so it carries half the discount: (100 − 25) × 10 % = 7.50.
    assert (totals.tax, totals.total) == (D("7.50"), D("157.50"))


def test_discount_above_subtotal_refused():
    with pytest.raises(ValueError):
        compute_totals([LineFigures(D(1), D("10.00"), D(0), False)], D("10.01"), None)
