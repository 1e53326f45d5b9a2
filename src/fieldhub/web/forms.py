"""Reading a posted form for a core service, and what a page echoes back when it refuses one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from fieldhub.web.templating import templates

# A refused 10 MB field is not sent back whole: the page shows its start and the message beside it.
ECHO_LIMIT = 20_000


async def form_data(request: Request) -> dict[str, str]:
    """Text fields of the posted form (the CSRF token and uploads left out)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def echo(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:ECHO_LIMIT] if isinstance(v, str) else v for k, v in values.items()}


def query(**params: Any) -> str:
    """A query string without the empty parameters, for pagination and filter links."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 10.0000 → "10", 8.2500 → "8.25"."""
    text = format(value.normalize(), "f")
    return text


templates.env.filters["plain"] = plain
