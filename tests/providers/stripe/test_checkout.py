"""Checkout on the emulator: sessions from bracket-encoded forms, the hosted page, card declines, ACH settlement."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.providers.stripe.conftest import RIVERBEND, Api, Receiver

SUCCESS = "http://hub.test/pay/done?session_id={CHECKOUT_SESSION_ID}"


def session_params(amount: int = 12345, methods: tuple[str, ...] = ("card", "us_bank_account")) -> dict[str, Any]:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": amount,
                    "product_data": {"name": "Invoice INV-1001"},
                },
                "quantity": 1,
            }
        ],
        "payment_method_types": list(methods),
        "success_url": SUCCESS,
        "cancel_url": "http://hub.test/pay/cancel",
        "client_reference_id": "inv_1001",
        "customer_email": "pat@example.com",
        "metadata": {"invoice_id": "7"},
        "payment_intent_data": {"metadata": {"invoice_id": "7", "tenant": "t1"}},
    }


@pytest.fixture
async def connected(api: Api) -> str:
    assert (await api.http.post(f"/_emulator/accounts/{RIVERBEND}/connect")).status_code == 200
    return RIVERBEND


async def new_session(api: Api, account: str, **kw: Any) -> dict[str, Any]:
    r = await api.post("/v1/checkout/sessions", session_params(**kw), account=account)
    assert r.status_code == 200, r.text
    return r.json()


async def test_create_and_retrieve_a_session(api: Api, connected: str) -> None:
    session = await new_session(api, connected)
    assert session["id"].startswith("cs_test_") and session["status"] == "open"
    assert session["payment_status"] == "unpaid" and session["amount_total"] == 12345
    assert session["metadata"] == {"invoice_id": "7"} and session["client_reference_id"] == "inv_1001"
    assert session["payment_method_types"] == ["card", "us_bank_account"]
    assert session["url"].endswith(f"/c/pay/{session['id']}") and session["payment_intent"] is None
    got = (await api.get(f"/v1/checkout/sessions/{session['id']}", account=connected)).json()
    assert got == session
    items = (await api.get(f"/v1/checkout/sessions/{session['id']}/line_items", account=connected)).json()
    assert items["data"][0]["description"] == "Invoice INV-1001" and items["data"][0]["amount_total"] == 12345
    # Objects are per account: the platform cannot see the connected account's session.
    missing = await api.get(f"/v1/checkout/sessions/{session['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


async def test_card_payment_through_the_hosted_page(api: Api, emu: StripeEmulator, receiver: Receiver, connected: str):
    session = await new_session(api, connected)
    page = await api.http.get(urlparse(session["url"]).path)
    assert page.status_code == 200 and "$123.45" in page.text and "Riverbend Plumbing" in page.text
    paid = await api.http.post(
        urlparse(session["url"]).path + "/card",
        data={"email": "pat@example.com", "number": "4242 4242 4242 4242", "exp": "12 / 34", "cvc": "123"},
    )
    assert paid.status_code == 303
    assert paid.headers["location"] == f"http://hub.test/pay/done?session_id={session['id']}"

    done = (
        await api.get(
            f"/v1/checkout/sessions/{session['id']}",
            {"expand": ["payment_intent.latest_charge.balance_transaction"]},
            account=connected,
        )
    ).json()
    assert done["status"] == "complete" and done["payment_status"] == "paid"
    intent = done["payment_intent"]
    assert intent["status"] == "succeeded" and intent["amount_received"] == 12345
    assert intent["metadata"] == {"invoice_id": "7", "tenant": "t1"}
    txn = intent["latest_charge"]["balance_transaction"]
    # 2.9% of $123.45 is 358.005 cents, rounded half up to 358, plus 30.
    assert txn["fee"] == 388 and txn["net"] == 12345 - 388 and txn["status"] == "pending"
    api.spec.validate(intent, "payment_intent")

    await emu.webhooks.idle()
    assert receiver.types() == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    for event in receiver.events:
        api.spec.validate(event, "event")
        assert event["account"] == connected and event["data"]["object"]["object"]
    # A paid session's page no longer takes payments.
    assert "Payment complete" in (await api.http.get(urlparse(session["url"]).path)).text


@pytest.mark.parametrize(
    ("number", "decline", "message"),
    [
        ("4000000000000002", "generic_decline", "Your card was declined."),
        ("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
    ],
)
async def test_declines_keep_the_session_open(
    api: Api, emu: StripeEmulator, receiver: Receiver, connected: str, number: str, decline: str, message: str
) -> None:
    session = await new_session(api, connected)
    path = urlparse(session["url"]).path
    r = await api.http.post(path + "/card", data={"number": number, "exp": "12/34", "cvc": "123"})
    assert r.status_code == 402 and message in r.text and "role=alert" in r.text
    again = (await api.get(f"/v1/checkout/sessions/{session['id']}", account=connected)).json()
    assert again["status"] == "open" and again["payment_status"] == "unpaid"
    intent = (await api.get(f"/v1/payment_intents/{again['payment_intent']}", account=connected)).json()
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline
    assert intent["last_payment_error"]["type"] == "card_error"
    charge = (await api.get(f"/v1/charges/{intent['latest_charge']}", account=connected)).json()
    assert charge["status"] == "failed" and charge["failure_code"] == "card_declined"
    # A bad number never reaches the bank.
    assert "invalid" in (await api.http.post(path + "/card", data={"number": "4242424242424241"})).text
    # The customer tries another card and it goes through on the same PaymentIntent.
    ok = await api.http.post(path + "/card", data={"number": "4242424242424242", "exp": "12/34"})
    assert ok.status_code == 303
    final = (await api.get(f"/v1/payment_intents/{intent['id']}", account=connected)).json()
    assert final["status"] == "succeeded" and final["last_payment_error"] is None
    await emu.webhooks.idle()
    assert receiver.types()[:3] == ["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]


async def test_ach_processing_then_settled_by_control(
    api: Api, emu: StripeEmulator, receiver: Receiver, connected: str
) -> None:
    session = await new_session(api, connected, amount=100000)
    r = await api.http.post(urlparse(session["url"]).path + "/bank", data={"email": "pat@example.com"})
    assert r.status_code == 303
    now = await api.get(f"/v1/checkout/sessions/{session['id']}", {"expand": ["payment_intent"]}, account=connected)
    body = now.json()
    assert body["status"] == "complete" and body["payment_status"] == "unpaid"
    assert body["payment_intent"]["status"] == "processing"
    control = f"/_emulator/checkout/sessions/{session['id']}/settle"
    settle = await api.http.post(control, params={"outcome": "succeeded"})
    assert settle.status_code == 200
    assert (await api.http.post(f"/_emulator/checkout/sessions/{session['id']}/settle")).status_code == 409
    intent = (await api.get(f"/v1/payment_intents/{body['payment_intent']['id']}", account=connected)).json()
    charge = (
        await api.get(f"/v1/charges/{intent['latest_charge']}", {"expand": ["balance_transaction"]}, account=connected)
    ).json()
    assert intent["status"] == "succeeded" and charge["payment_method_details"]["type"] == "us_bank_account"
    assert charge["balance_transaction"]["fee"] == 500  # 0.8% of $1,000 is $8, capped at $5
    await emu.webhooks.idle()
    assert receiver.types() == [
        "payment_intent.created",
        "charge.pending",
        "payment_intent.processing",
        "checkout.session.completed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    completed = receiver.events[3]["data"]["object"]
    assert completed["payment_status"] == "unpaid"


async def test_ach_settles_on_the_clock_or_fails(api: Api, emu: StripeEmulator, receiver: Receiver, connected: str):
    first = await new_session(api, connected, amount=5000)
    await api.http.post(urlparse(first["url"]).path + "/bank")
    second = await new_session(api, connected, amount=7000)
    await api.http.post(urlparse(second["url"]).path + "/bank")
    await api.http.post(f"/_emulator/checkout/sessions/{second['id']}/settle", params={"outcome": "failed"})
    emu.clock.advance(emu.timings.ach_settle + 1)
    a = (await api.get(f"/v1/checkout/sessions/{first['id']}", account=connected)).json()
    b = (await api.get(f"/v1/checkout/sessions/{second['id']}", account=connected)).json()
    assert a["payment_status"] == "paid" and b["payment_status"] == "unpaid"
    failed = (await api.get(f"/v1/payment_intents/{b['payment_intent']}", account=connected)).json()
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "insufficient_funds"
    await emu.webhooks.flush(force=True)
    types = receiver.types()
    assert "checkout.session.async_payment_failed" in types and "payment_intent.payment_failed" in types
    assert types.count("checkout.session.async_payment_succeeded") == 1
    intent = (await api.get(f"/v1/payment_intents/{a['payment_intent']}", account=connected)).json()
    charge = (
        await api.get(f"/v1/charges/{intent['latest_charge']}", {"expand": ["balance_transaction"]}, account=connected)
    ).json()
    assert charge["status"] == "succeeded"
    assert charge["balance_transaction"]["fee"] == 40  # 0.8% of $50


async def test_expire_and_list(api: Api, emu: StripeEmulator, connected: str) -> None:
    sessions = [await new_session(api, connected, amount=100 + i) for i in range(5)]
    r = await api.post(f"/v1/checkout/sessions/{sessions[0]['id']}/expire", account=connected)
    assert r.status_code == 200 and r.json()["status"] == "expired" and r.json()["url"] is None
    again = await api.post(f"/v1/checkout/sessions/{sessions[0]['id']}/expire", account=connected)
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_request_error"
    assert "expired" in (await api.http.get(f"/c/pay/{sessions[0]['id']}")).text

    page1 = (await api.get("/v1/checkout/sessions", {"limit": 2}, account=connected)).json()
    assert [s["id"] for s in page1["data"]] == [sessions[4]["id"], sessions[3]["id"]] and page1["has_more"]
    page2 = (
        await api.get("/v1/checkout/sessions", {"limit": 2, "starting_after": sessions[3]["id"]}, account=connected)
    ).json()
    assert [s["id"] for s in page2["data"]] == [sessions[2]["id"], sessions[1]["id"]] and page2["has_more"]
    last = (
        await api.get("/v1/checkout/sessions", {"limit": 2, "starting_after": sessions[1]["id"]}, account=connected)
    ).json()
    assert [s["id"] for s in last["data"]] == [sessions[0]["id"]] and not last["has_more"]
    back = (
        await api.get("/v1/checkout/sessions", {"limit": 2, "ending_before": sessions[1]["id"]}, account=connected)
    ).json()
    assert [s["id"] for s in back["data"]] == [sessions[3]["id"], sessions[2]["id"]] and back["has_more"]
    assert page1["url"] == "/v1/checkout/sessions" and page1["object"] == "list"
    bad = await api.get("/v1/checkout/sessions", {"limit": 101}, account=connected)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    # Sessions expire on their own after 24 hours.
    emu.clock.advance(86401)
    left = (await api.get("/v1/checkout/sessions", {"status": "open"}, account=connected)).json()
    assert left["data"] == []


async def test_validation_errors(api: Api, connected: str) -> None:
    params = session_params()
    del params["success_url"]
    r = await api.post("/v1/checkout/sessions", params, account=connected)
    assert r.status_code == 400 and r.json()["error"]["param"] == "success_url"
    params = session_params()
    params["line_items"][0]["price_data"].pop("unit_amount")
    r = await api.post("/v1/checkout/sessions", params, account=connected)
    assert r.json()["error"]["param"] == "line_items[0][price_data][unit_amount]"
    r = await api.post("/v1/checkout/sessions", session_params(methods=("paypal",)), account=connected)
    assert r.json()["error"]["param"] == "payment_method_types"


async def test_idempotent_replay(api: Api, emu: StripeEmulator, connected: str) -> None:
    first = await api.post("/v1/checkout/sessions", session_params(), account=connected, idempotency_key="k-1")
    again = await api.post("/v1/checkout/sessions", session_params(), account=connected, idempotency_key="k-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(emu.find(connected, "checkout.session")) == 1
    other = await api.post("/v1/checkout/sessions", session_params(amount=1), account=connected, idempotency_key="k-1")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    # A request that failed validation saves nothing: the key can be used again.
    bad = session_params()
    bad["mode"] = "subscription"
    assert (await api.post("/v1/checkout/sessions", bad, account=connected, idempotency_key="k-2")).status_code == 400
    ok = await api.post("/v1/checkout/sessions", session_params(), account=connected, idempotency_key="k-2")
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
    # Keys are per account.
    platform = await api.post("/v1/checkout/sessions", session_params(), idempotency_key="k-1")
    assert platform.status_code == 200 and platform.json()["id"] != first.json()["id"]
