"""fieldhub.exactjson: amounts exact both ways, and strings written as json writes them (scrubbing relies on it)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldhub import exactjson
from fieldhub.log import register_secret, scrub_json


def test_decimals_are_written_as_numbers_digit_for_digit() -> None:
    body = {"Amount": Decimal("1234567890123456.10"), "Lines": [Decimal("-0.01"), Decimal("1E+2")], "n": 3}
    assert exactjson.dumps(body) == b'{"Amount":1234567890123456.10,"Lines":[-0.01,1E+2],"n":3}'
    assert exactjson.loads(exactjson.dumps(body)) == body
    assert isinstance(exactjson.loads(b'{"a": 0.1}')["a"], Decimal)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), object()])
def test_what_is_not_json_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        exactjson.dumps({"Amount": value})


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**12), max_value=10**12))
def test_any_amount_comes_back_exactly(amount: Decimal) -> None:
    back = exactjson.loads(exactjson.dumps({"Amount": amount}))["Amount"]
    assert back == amount and str(back) == str(amount)


def test_text_keeps_amounts_as_strings_and_any_key() -> None:
    kept = json.loads(exactjson.text({"a": Decimal("2.50"), 7: "seven", "s": frozenset()}))
    assert kept == {"a": "2.50", "7": "seven", "s": "frozenset()"}


def test_strings_are_escaped_as_json_writes_them() -> None:
    # log.scrub_json finds a secret inside a history body by how it reads in JSON; both must agree.
    for start in range(0, 0x10000, 512):
        text = "".join(chr(c) for c in range(start, start + 512) if not 0xD800 <= c <= 0xDFFF) + '"\\/'
        assert exactjson.text(text) == json.dumps(text, ensure_ascii=False)


def test_a_secret_with_quotes_is_scrubbed_from_a_history_body() -> None:
    secret = 'sk_live_"quoted"\\and\ttabbed'
    register_secret(secret)
    body = exactjson.text({"note": f"token {secret} end", secret: 1})
    assert secret not in json.loads(scrub_json(body))["note"]
    assert "[redacted]" in scrub_json(body)
    assert exactjson.text(secret)[1:-1] not in scrub_json(body)
