"""Helpers to drive a connect through a mounted emulator's consent page, as a browser would."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest


async def consent(
    client: httpx.AsyncClient,
    key: str,
    *,
    decision: str = "approve",
    account: str | None = None,
    mode: str = "page",
    reconnect: int | None = None,
) -> tuple[httpx.Response, dict[str, str]]:
    """Start a connect, approve (or deny) at the emulator, and return the hub's callback response and its query."""
    params = {"mode": mode} | ({"reconnect": str(reconnect)} if reconnect else {})
    start = await client.get(f"/integrations/{key}/connect", params=params)
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    # An emulator on a real port is reached over the network; a mounted one through the hub app.
    remote = not authorize.startswith(str(client.base_url))
    emu = httpx.AsyncClient(timeout=10) if remote else client
    try:
        page = await emu.get(authorize)
        assert page.status_code == 200, page.text
        answer = await _approve(emu, authorize, page.text, decision, account)
    finally:
        if remote:
            await emu.aclose()
    back = answer.headers["location"]
    back_query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    return await client.get(back), back_query


async def _approve(client: httpx.AsyncClient, authorize: str, page: str, decision: str, account: str | None):
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    form = {**query, "decision": decision}
    if account:
        form["account"] = account
    else:
        first = re.search(r'name=account value="([^"]+)"', page)
        form["account"] = first.group(1) if first else ""
    answer = await client.post(authorize.split("?")[0], data=form)
    assert answer.status_code == 302, answer.text
    return answer


@pytest.fixture
def emulators(app):
    return app.state.endpoints.emulators
