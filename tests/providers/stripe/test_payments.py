"""Refunds, balance, payouts with reconciliation, disputes and the Events API on the emulator."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from fieldhub.providers.stripe.emulator import StripeEmulator
from tests.providers.stripe.conftest import RIVERBEND, Api, Receiver
from tests.providers.stripe.test_checkout import new_session


@pytest.fixture
async def paid(api: Api) -> dict:
    """A connected account with one $200.00 card payment; returns its PaymentIntent."""
    await api.http.post(f"/_emulator/accounts/{RIVERBEND}/connect")
    session = await new_session(api, RIVERBEND, amount=20000)
    r = await api.http.post(urlparse(session["url"]).path + "/card", data={"number": "4242424242424242"})
    assert r.status_code == 303
    session = (await api.get(f"/v1/checkout/sessions/{session['id']}", account=RIVERBEND)).json()
    return (await api.get(f"/v1/payment_intents/{session['payment_intent']}", account=RIVERBEND)).json()


async def test_partial_then_full_refund(api: Api, emu: StripeEmulator, receiver: Receiver, paid: dict) -> None:
    r = await api.post(
        "/v1/refunds",
        {"payment_intent": paid["id"], "amount": 5000, "reason": "requested_by_customer", "metadata": {"r": "1"}},
        account=RIVERBEND,
        idempotency_key="refund-1",
    )
    assert r.status_code == 200
    refund = r.json()
    assert refund["amount"] == 5000 and refund["status"] == "succeeded" and refund["charge"] == paid["latest_charge"]
    txn = (await api.get(f"/v1/balance_transactions/{refund['balance_transaction']}", account=RIVERBEND)).json()
    assert txn["type"] == "refund" and txn["amount"] == -5000 and txn["source"] == refund["id"]
    charge = (await api.get(f"/v1/charges/{paid['latest_charge']}", account=RIVERBEND)).json()
    assert charge["amount_refunded"] == 5000 and charge["refunded"] is False

    too_much = await api.post("/v1/refunds", {"charge": charge["id"], "amount": 15001}, account=RIVERBEND)
    assert too_much.status_code == 400 and too_much.json()["error"]["code"] == "amount_too_large"
    rest = (await api.post("/v1/refunds", {"charge": charge["id"]}, account=RIVERBEND)).json()
    assert rest["amount"] == 15000
    charge = (await api.get(f"/v1/charges/{charge['id']}", account=RIVERBEND)).json()
    assert charge["refunded"] is True
    again = await api.post("/v1/refunds", {"charge": charge["id"], "amount": 1}, account=RIVERBEND)
    assert again.json()["error"]["code"] == "charge_already_refunded"
    listed = (await api.get("/v1/refunds", {"payment_intent": paid["id"]}, account=RIVERBEND)).json()
    assert [x["amount"] for x in listed["data"]] == [15000, 5000]
    none = await api.post("/v1/refunds", {}, account=RIVERBEND)
    assert none.status_code == 400

    await emu.webhooks.idle()
    types = receiver.types()
    assert types.count("charge.refunded") == 2 and types.count("refund.created") == 2
    refunded = next(e for e in receiver.events if e["type"] == "refund.created")
    assert refunded["request"]["idempotency_key"] == "refund-1" and refunded["request"]["id"].startswith("req_")


async def test_payout_of_available_balance_and_reconciliation(
    api: Api, emu: StripeEmulator, receiver: Receiver, paid: dict
) -> None:
    balance = (await api.get("/v1/balance", account=RIVERBEND)).json()
    fee = 580 + 30  # 2.9% of $200 + 30¢
    assert balance["pending"][0]["amount"] == 20000 - fee and balance["available"][0]["amount"] == 0
    assert (await api.http.post("/_emulator/payouts/run", params={"account": RIVERBEND})).json()["payouts"] == []

    emu.clock.advance(emu.timings.card_available + 1)
    balance = (await api.get("/v1/balance", account=RIVERBEND)).json()
    assert balance["available"][0]["amount"] == 20000 - fee and balance["pending"][0]["amount"] == 0

    run = (await api.http.post("/_emulator/payouts/run", params={"account": RIVERBEND})).json()
    payout = run["payouts"][0]
    assert payout["amount"] == 20000 - fee and payout["status"] == "paid"
    assert payout["reconciliation_status"] == "completed" and payout["arrival_date"] % 86400 == 0
    listed = (await api.get("/v1/payouts", {"status": "paid"}, account=RIVERBEND)).json()
    assert [p["id"] for p in listed["data"]] == [payout["id"]]
    txns = (
        await api.get(
            "/v1/balance_transactions", {"payout": payout["id"], "expand": ["data.source"]}, account=RIVERBEND
        )
    ).json()["data"]
    kinds = sorted(t["type"] for t in txns)
    assert kinds == ["charge", "payout"] and sum(t["net"] for t in txns) == 0
    charge_txn = next(t for t in txns if t["type"] == "charge")
    assert charge_txn["source"]["object"] == "charge"
    assert charge_txn["source"]["payment_intent"] == paid["id"] and charge_txn["fee"] == fee
    assert (await api.get("/v1/balance", account=RIVERBEND)).json()["available"][0]["amount"] == 0

    await emu.webhooks.idle()
    types = receiver.types()
    assert types[-4:] == ["payout.created", "payout.updated", "payout.paid", "payout.reconciliation_completed"]


async def test_payout_on_the_clock_and_failure(api: Api, emu: StripeEmulator, receiver: Receiver, paid: dict) -> None:
    emu.clock.advance(emu.timings.card_available + 1)
    await api.http.post("/_emulator/payouts/fail_next", params={"failure_code": "account_closed"})
    payout = (await api.http.post("/_emulator/payouts/run", params={"account": RIVERBEND, "complete": False})).json()[
        "payouts"
    ][0]
    assert payout["status"] == "pending"
    emu.clock.advance(emu.timings.payout_in_transit + 1)
    assert (await api.get(f"/v1/payouts/{payout['id']}", account=RIVERBEND)).json()["status"] == "in_transit"
    emu.clock.advance(emu.timings.payout_arrival)
    failed = (await api.get(f"/v1/payouts/{payout['id']}", account=RIVERBEND)).json()
    assert failed["status"] == "failed" and failed["failure_code"] == "account_closed"
    # The money comes back to the balance.
    assert (await api.get("/v1/balance", account=RIVERBEND)).json()["available"][0]["amount"] == payout["amount"]
    await emu.webhooks.flush(force=True)
    assert "payout.failed" in receiver.types() and "payout.paid" not in receiver.types()


async def test_dispute_and_events_api(api: Api, emu: StripeEmulator, receiver: Receiver, paid: dict) -> None:
    r = await api.http.post(f"/_emulator/charges/{paid['latest_charge']}/dispute")
    assert r.status_code == 200
    api.spec.validate(r.json(), "dispute")
    charge = (await api.get(f"/v1/charges/{paid['latest_charge']}", account=RIVERBEND)).json()
    assert charge["disputed"] is True
    refused = await api.post("/v1/refunds", {"charge": charge["id"]}, account=RIVERBEND)
    assert refused.json()["error"]["code"] == "charge_disputed"

    disputes = (await api.get("/v1/events", {"type": "charge.dispute.*"}, account=RIVERBEND)).json()
    assert [e["type"] for e in disputes["data"]] == ["charge.dispute.funds_withdrawn", "charge.dispute.created"]
    every = (await api.get("/v1/events", {"limit": 100}, account=RIVERBEND)).json()["data"]
    assert len(every) == len(emu.find(RIVERBEND, "event")) and all(e["account"] == RIVERBEND for e in every)
    several = await api.get(
        "/v1/events", {"types": ["charge.succeeded", "payment_intent.succeeded"]}, account=RIVERBEND
    )
    assert {e["type"] for e in several.json()["data"]} == {"charge.succeeded", "payment_intent.succeeded"}
    one = (await api.get(f"/v1/events/{every[0]['id']}", account=RIVERBEND)).json()
    assert one == every[0]
    later = (await api.get("/v1/events", {"created": {"gt": every[0]["created"]}}, account=RIVERBEND)).json()
    assert later["data"] == []
    # The platform's own event list does not show the connected account's events.
    assert (await api.get("/v1/events")).json()["data"] == []
