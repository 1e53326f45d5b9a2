"""fieldhub.db column types: money stored as scaled integers comes back exact, with its places."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldhub.db import ScaledDecimal


@given(st.integers(min_value=-(10**17), max_value=10**17), st.sampled_from([2, 4]))
def test_a_scaled_integer_reads_back_as_the_decimal_it_stored(units: int, scale: int) -> None:
    column = ScaledDecimal(scale)
    value = Decimal(units).scaleb(-scale)
    stored = column.process_bind_param(value, None)
    assert stored == units
    back = column.process_result_value(stored, None)
    assert back == value and back.as_tuple().exponent == -scale  # 5 -> "0.05", 100 -> "1.00"


def test_money_with_too_many_places_or_a_float_is_refused() -> None:
    with pytest.raises(ValueError):
        ScaledDecimal(2).process_bind_param(Decimal("1.005"), None)
    with pytest.raises(TypeError):
        ScaledDecimal(2).process_bind_param(1.5, None)  # type: ignore[arg-type]
    assert ScaledDecimal(2).process_result_value(None, None) is None
