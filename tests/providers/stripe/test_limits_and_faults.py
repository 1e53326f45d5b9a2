"""Sandbox rate limits per account and the framework's faults, answered in Stripe's error shape."""

from __future__ import annotations

import pytest

from fieldhub.hub.emulator.core import EmulatedDrop
from fieldhub.providers.stripe.emulator import StripeEmulator
from fieldhub.providers.stripe.emulator.forms import FormError, encode_form, parse_form
from tests.providers.stripe.conftest import RIVERBEND, Api


async def test_25_requests_per_second_per_account(api: Api, emu: StripeEmulator) -> None:
    emu.connected.add(RIVERBEND)
    statuses = [(await api.get("/v1/balance")).status_code for _ in range(26)]
    assert statuses == [200] * 25 + [429]
    limited = await api.get("/v1/balance")
    assert limited.json()["error"]["code"] == "rate_limit" and limited.headers["retry-after"]
    # Another account has its own bucket.
    assert (await api.get("/v1/balance", account=RIVERBEND)).status_code == 200
    emu.clock.advance(1.01)
    assert (await api.get("/v1/balance")).status_code == 200


async def test_injected_faults_speak_stripe(api: Api, emu: StripeEmulator) -> None:
    await api.http.post("/_emulator/faults", json={"kind": "status", "status": 500, "count": 1, "path": "^/v1/"})
    r = await api.get("/v1/balance")
    assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"
    await api.http.post("/_emulator/faults", json={"kind": "rate_limit", "count": 1, "retry_after": 3})
    r = await api.get("/v1/balance")
    assert r.status_code == 429 and r.headers["retry-after"] == "3" and r.headers["request-id"].startswith("req_")
    emu.connected.add(RIVERBEND)
    await api.http.post("/_emulator/faults", json={"kind": "drop_after_commit", "count": 1, "path": "^/v1/accounts"})
    with pytest.raises(EmulatedDrop):
        await api.http.post(
            "/v1/accounts", data={"type": "express"}, headers={"Authorization": f"Bearer {emu.config.client_secret}"}
        )
    # The account was created though the client never heard.
    assert len([a for a in emu.find(emu.platform_id, "account")]) == 4


def test_bracket_forms_round_trip() -> None:
    body = (
        "metadata[invoice_id]=7&payment_method_types[]=card&payment_method_types[]=us_bank_account"
        "&line_items[0][price_data][unit_amount]=12345&line_items[0][quantity]=1"
        "&line_items[1][price_data][unit_amount]=5&expand[]=payment_intent"
    )
    parsed = parse_form(body)
    assert parsed == {
        "metadata": {"invoice_id": "7"},
        "payment_method_types": ["card", "us_bank_account"],
        "line_items": [{"price_data": {"unit_amount": "12345"}, "quantity": "1"}, {"price_data": {"unit_amount": "5"}}],
        "expand": ["payment_intent"],
    }
    from urllib.parse import urlencode

    assert parse_form(urlencode(encode_form(parsed))) == parsed
    with pytest.raises(FormError):
        parse_form("a=1&a[b]=2")
    with pytest.raises(FormError):
        parse_form("a[=1")


async def test_bad_form_is_a_stripe_400(api: Api, emu: StripeEmulator) -> None:
    r = await api.http.post(
        "/v1/refunds",
        content=b"a=1&a[b]=2",
        headers={
            "Authorization": f"Bearer {emu.config.client_secret}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
