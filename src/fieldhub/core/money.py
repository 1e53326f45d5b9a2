"""Money as Decimal with one stated rounding rule: half-up to the currency's minor unit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Whole digits an amount may have before parse_money refuses it: far past any invoice (validation bounds it
# tighter), and short of the 28 digits decimal's default context can quantize to cents.
MAX_DIGITS = 24


def to_money(value: Decimal | int | str) -> Decimal:
    """Round to cents, half up (what a customer expects on an invoice: 0.125 → 0.13)."""
    if isinstance(value, float):
        raise TypeError("floats are not money: pass a Decimal or a string")
    try:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def parse_money(text: str) -> Decimal:
    """Parse what a person types ("1,234.5", "$12") into an exact amount, or raise ValueError."""
    cleaned = text.strip().replace(",", "").replace("$", "")
    if not cleaned:
        raise ValueError("enter an amount")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    if value.adjusted() >= MAX_DIGITS:
        # Checked before quantize: past the context's 28 digits it raises InvalidOperation, not ValueError.
        raise ValueError("too large for an amount")
    if value != value.quantize(CENT):
        raise ValueError("amounts have at most 2 decimal places")
    return value.quantize(CENT)


def format_money(value: Decimal, currency: str = "USD") -> str:
    symbol = {"USD": "$", "CAD": "$", "AUD": "$", "GBP": "£", "EUR": "€"}.get(currency, "")
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{abs(value):,.2f}"
