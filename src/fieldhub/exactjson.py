"""JSON with exact amounts: one place that writes and reads the bodies fieldhub exchanges and keeps.

Written by orjson: the sync engine encodes every body it sends and keeps (a 10,000-invoice backfill is
tens of thousands of bodies), and orjson does it in about a third of json's time with the same output
for strings (the same escapes; tests/test_exactjson.py checks it over the Basic Multilingual Plane),
which secret scrubbing relies on (log.scrub_json). Read by json with parse_float=Decimal: orjson has
no Decimal parsing, and an amount must never pass through a float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


def _number(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))  # written as the JSON number it is, digit for digit
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


def dumps(value: Any) -> bytes:
    """JSON (UTF-8) with Decimals written as numbers, digit for digit: what a provider is sent."""
    return orjson.dumps(value, default=_number)


def loads(text: str | bytes) -> Any:
    """JSON with every number that has a fraction or exponent read as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def text(value: Any) -> str:
    """JSON text to keep (history bodies): Decimals as exact strings, any other object as str(), keys as text."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
