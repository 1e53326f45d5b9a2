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


def _session_params(invoice_id: str, cents: int) -> dict:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": cents,
                    "product_data": {"name": f"Invoice {invoice_id}"},
                },
                "quantity": 1,
            }
        ],
        "success_url": "http://hub.test/done",
        "metadata": {"invoice_id": invoice_id},
        "payment_intent_data": {"metadata": {"invoice_id": invoice_id}},
    }


async def _paid(
    sdk: stripe.StripeClient, emu: StripeEmulator, invoice_id: str, cents: int, card: str = "4242424242424242"
):
    """A Checkout payment made on the emulator's page (its control route), as a customer pays."""
    session = await sdk.v1.checkout.sessions.create_async(
        _session_params(invoice_id, cents), {"stripe_account": RIVERBEND}
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu), base_url="http://stripe.test") as http:
        r = await http.post(f"/_emulator/checkout/sessions/{session.id}/pay", json={"method": "card", "number": card})
    assert r.status_code in (200, 402), r.text
    return await sdk.v1.checkout.sessions.retrieve_async(session.id, options={"stripe_account": RIVERBEND})


async def test_issue15_item10_unknown_parameters_are_refused_as_stripe_refuses_them(
    sdk: stripe.StripeClient, emu: StripeEmulator
) -> None:
    emu.connected.add(RIVERBEND)
    options = {"stripe_account": RIVERBEND}
    with pytest.raises(stripe.InvalidRequestError) as top:
        await sdk.v1.checkout.sessions.create_async({**_session_params("7", 100), "colour": "red"}, options)
    assert top.value.http_status == 400 and top.value.code == "parameter_unknown"
    assert top.value.param == "colour" and top.value.user_message == "Received unknown parameter: colour"
    nested = _session_params("7", 100)
    nested["line_items"][0]["price_data"]["discount"] = "5"
    nested["payment_intent_data"]["colour"] = "red"
    with pytest.raises(stripe.InvalidRequestError) as deep:
        await sdk.v1.checkout.sessions.create_async(nested, options)
    assert deep.value.code == "parameter_unknown"
    assert deep.value.user_message == (
        "Received unknown parameters: line_items[0][price_data][discount], payment_intent_data[colour]"
    )
    with pytest.raises(stripe.InvalidRequestError) as listing:
        await sdk.v1.charges.list_async({"colour": "red", "limit": 3}, options)
    assert listing.value.code == "parameter_unknown" and listing.value.param == "colour"
    # What spec3 declares goes through: any metadata key, expand[], range filters, arrays of objects.
    fine = _session_params("7", 100)
    fine["metadata"] |= {"any-key-at-all": "x"}
    session = await sdk.v1.checkout.sessions.create_async({**fine, "expand": ["payment_intent"]}, options)
    assert session.metadata["any-key-at-all"] == "x"
    charges = await sdk.v1.charges.list_async({"created": {"gte": 0}, "limit": 3}, options)
    assert charges.data == []
    # Nothing was created by the refused requests.
    assert len(emu.find(RIVERBEND, "checkout.session")) == 1


async def test_issue15_item10_search_payment_intents_and_charges(sdk: stripe.StripeClient, emu: StripeEmulator) -> None:
    emu.connected.add(RIVERBEND)
    options = {"stripe_account": RIVERBEND}
    first = await _paid(sdk, emu, "7", 12345)
    await _paid(sdk, emu, "8", 5000)
    declined = await _paid(sdk, emu, "9", 777, card="4000000000000002")
    assert first.payment_status == "paid" and declined.payment_status == "unpaid"

    found = await sdk.v1.payment_intents.search_async(
        {"query": "metadata['invoice_id']:'7' AND status:'succeeded'"}, options
    )
    assert isinstance(found, stripe.SearchResultObject)
    assert [pi.id for pi in found.data] == [first.payment_intent] and found.has_more is False
    assert found.next_page is None and found.url == "/v1/payment_intents/search"
    assert found.last_response.data["object"] == "search_result"

    succeeded = await sdk.v1.payment_intents.search_async({"query": 'status:"succeeded"', "limit": 1}, options)
    assert len(succeeded.data) == 1 and succeeded.has_more is True and succeeded.next_page
    rest = await sdk.v1.payment_intents.search_async(
        {"query": 'status:"succeeded"', "limit": 1, "page": succeeded.next_page}, options
    )
    assert len(rest.data) == 1 and rest.has_more is False and rest.data[0].id != succeeded.data[0].id

    charges = await sdk.v1.charges.search_async({"query": "amount>1000 AND -metadata['invoice_id']:'8'"}, options)
    assert [c.payment_intent for c in charges.data] == [first.payment_intent]
    either = await sdk.v1.charges.search_async(
        {"query": "metadata['invoice_id']:'7' OR metadata['invoice_id']:'9'", "expand": ["total_count"]}, options
    )
    assert {c.metadata["invoice_id"] for c in either.data} == {"7", "9"} and either.total_count == 2
    later = await sdk.v1.charges.search_async({"query": f"created>{emu.now() + 60}"}, options)
    assert later.data == []
    failed = await sdk.v1.charges.search_async({"query": "status:'failed'"}, options)
    assert [c.amount for c in failed.data] == [777]

    with pytest.raises(stripe.InvalidRequestError) as unsupported:
        await sdk.v1.payment_intents.search_async({"query": "colour:'red'"}, options)
    assert unsupported.value.param == "query" and "unsupported search field" in unsupported.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as mixed:
        await sdk.v1.charges.search_async({"query": "amount>1 AND status:'failed' OR refunded:'true'"}, options)
    assert mixed.value.param == "query"
    # A search is not mistaken for an object id any more.
    with pytest.raises(stripe.InvalidRequestError) as no_query:
        await sdk.v1.payment_intents.search_async({}, options)  # type: ignore[typeddict-item]
    assert no_query.value.code == "parameter_missing" and no_query.value.param == "query"


async def test_issue15_item10_stripe_version_is_honoured(sdk: stripe.StripeClient, emu: StripeEmulator) -> None:
    emu.connected.add(RIVERBEND)
    pinned = stripe.api_version  # what this SDK sends unless told otherwise
    session = await sdk.v1.checkout.sessions.create_async(_session_params("7", 100), {"stripe_account": RIVERBEND})
    assert session.last_response.headers["stripe-version"] == pinned
    # From 2025-03-31.basil a session's shipping details live in collected_information.
    assert "collected_information" in session and "shipping_details" not in session

    old = {"stripe_account": RIVERBEND, "stripe_version": "2023-08-16"}
    again = await sdk.v1.checkout.sessions.retrieve_async(session.id, options=old)
    assert again.last_response.headers["stripe-version"] == "2023-08-16"
    assert "shipping_details" in again and "collected_information" not in again

    paid = await _paid(sdk, emu, "8", 5000)
    intent = await sdk.v1.payment_intents.retrieve_async(paid.payment_intent, options={"stripe_account": RIVERBEND})
    assert "invoice" not in intent and intent.status == "succeeded"
    intent_then = await sdk.v1.payment_intents.retrieve_async(paid.payment_intent, options=old)
    assert "invoice" in intent_then and intent_then.invoice is None

    for bad in ("2025-09-30.acacia", "banana", "2023-02-30"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await sdk.v1.accounts.retrieve_current_async(options={"stripe_version": bad})
        assert refused.value.http_status == 400
        assert refused.value.user_message == f"Invalid Stripe API version: {bad}"
    # Without the header the account's default version answers, and says so.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emu), base_url="http://stripe.test") as http:
        r = await http.get("/v1/balance", headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 200 and r.headers["stripe-version"] == "2023-08-16"
