"""The official `stripe` SDK against the emulator: the adapter can't tell it from Stripe but by base URL."""

from __future__ import annotations

import httpx
import pytest
import stripe

from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.providers.stripe.conftest import RIVERBEND, SECRET


@pytest.fixture
def sdk(emu: StripeEmulator) -> stripe.StripeClient:
    http_client = stripe.HTTPXClient()
    # The SDK builds its own AsyncClient; swap in one that reaches the emulator in-process.
    http_client._client_async = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu))
    return stripe.StripeClient(SECRET, base_addresses={"api": "http://stripe.test"}, http_client=http_client)


async def test_sdk_checkout_create_retrieve_and_replay(sdk: stripe.StripeClient, emu: StripeEmulator) -> None:
    emu.connected.add(RIVERBEND)
    params = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 12345, "product_data": {"name": "Invoice INV-1"}},
                "quantity": 1,
            }
        ],
        "payment_method_types": ["card", "us_bank_account"],
        "success_url": "http://hub.test/done?s={CHECKOUT_SESSION_ID}",
        "metadata": {"invoice_id": "7"},
        "payment_intent_data": {"metadata": {"invoice_id": "7"}},
    }
    options = {"stripe_account": RIVERBEND, "idempotency_key": "sdk-1"}
    session = await sdk.v1.checkout.sessions.create_async(params, options)
    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_") and session.amount_total == 12345
    assert session.metadata["invoice_id"] == "7" and session.status == "open"

    again = await sdk.v1.checkout.sessions.create_async(params, options)
    assert again.id == session.id
    assert again.last_response.headers["idempotent-replayed"] == "true"

    got = await sdk.v1.checkout.sessions.retrieve_async(session.id, options={"stripe_account": RIVERBEND})
    assert got.id == session.id and got.payment_method_types == ["card", "us_bank_account"]

    with pytest.raises(stripe.IdempotencyError):
        await sdk.v1.checkout.sessions.create_async({**params, "metadata": {"invoice_id": "8"}}, options)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await sdk.v1.checkout.sessions.retrieve_async("cs_test_nope", options={"stripe_account": RIVERBEND})
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.PermissionError):
        await sdk.v1.accounts.retrieve_current_async(options={"stripe_account": "acct_1NotConnected00"})


async def test_sdk_lists_and_authentication(sdk: stripe.StripeClient, emu: StripeEmulator) -> None:
    emu.connected.add(RIVERBEND)
    account = await sdk.v1.accounts.retrieve_async(RIVERBEND)
    assert account.business_profile.name == "Riverbend Plumbing & Heating"
    assert account.external_accounts.data[0].last4 == "6789"
    events = await sdk.v1.events.list_async({"limit": 3}, {"stripe_account": RIVERBEND})
    assert events.data == [] and events.has_more is False
    bad = stripe.StripeClient(
        "sk_test_wrong", base_addresses={"api": "http://stripe.test"}, http_client=sdk._requestor._client
    )
    with pytest.raises(stripe.AuthenticationError):
        await bad.v1.accounts.retrieve_current_async()
