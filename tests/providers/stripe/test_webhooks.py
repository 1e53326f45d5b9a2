"""Webhooks from the emulator: Stripe's exact signature, retries with backoff, pause, flush and redelivery."""

from __future__ import annotations

import stripe

from fieldhub.providers.stripe.emulator import StripeEmulator
from fieldhub.providers.stripe.emulator.webhooks import RETRY_SCHEDULE, signature_header
from tests.providers.stripe.conftest import RIVERBEND, WEBHOOK_SECRET, Api, Receiver, oauth_connect


def test_signer_matches_the_fact_sheet_vector() -> None:
    header = signature_header('{"id":"evt_test","object":"event"}', "whsec_test_secret", 1700000000)
    assert header == "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"


def test_signer_is_accepted_by_the_official_sdk() -> None:
    import time

    payload = '{\n  "id": "evt_1",\n  "object": "event"\n}'
    header = signature_header(payload, "whsec_abc", int(time.time()))
    assert stripe.WebhookSignature.verify_header(payload, header, "whsec_abc", tolerance=300)
    try:
        stripe.WebhookSignature.verify_header(payload, header, "whsec_other", tolerance=300)
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a wrong secret must not verify")


async def test_deliveries_are_signed_and_parse_with_the_sdk(api: Api, emu: StripeEmulator, receiver: Receiver) -> None:
    await oauth_connect(api.http, RIVERBEND)
    await api.post(f"/v1/accounts/{RIVERBEND}", {"business_profile": {"name": "Riverbend Plumbing"}})
    await emu.webhooks.idle()
    request = receiver.received[-1]
    assert str(request.url) == "http://hub.test/webhooks/stripe"
    assert request.headers["content-type"].startswith("application/json")
    event = stripe.Webhook.construct_event(request.content, request.headers["stripe-signature"], WEBHOOK_SECRET)
    assert event.type == "account.updated" and event.account == RIVERBEND
    assert event.data.previous_attributes["business_profile"]["name"] == "Riverbend Plumbing & Heating"
    api.spec.validate(receiver.events[-1], "event")


async def test_retries_with_backoff_until_the_hub_answers(api: Api, emu: StripeEmulator, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    await oauth_connect(api.http, RIVERBEND)
    await api.post(f"/v1/accounts/{RIVERBEND}", {"metadata": {"k": "v"}})
    await emu.webhooks.idle()
    (delivery,) = emu.webhooks.deliveries
    assert delivery.status == "pending" and [a.status for a in delivery.attempts] == [500]
    event = (await api.get(f"/v1/events/{delivery.event_id}", account=RIVERBEND)).json()
    assert event["pending_webhooks"] == 1
    emu.clock.advance(RETRY_SCHEDULE[0] - 5)
    await api.http.post("/_emulator/tick")
    assert len(delivery.attempts) == 1  # not due yet
    emu.clock.advance(10)
    await api.http.post("/_emulator/tick")
    assert [a.status for a in delivery.attempts] == [500, 503]
    emu.clock.advance(RETRY_SCHEDULE[1] + 1)
    await api.http.post("/_emulator/tick")
    assert delivery.status == "delivered" and len(receiver.received) == 3
    listed = (await api.http.get("/_emulator/webhooks/deliveries", params={"status": "delivered"})).json()
    assert listed[0]["event_id"] == delivery.event_id and len(listed[0]["attempts"]) == 3
    event = (await api.get(f"/v1/events/{delivery.event_id}", account=RIVERBEND)).json()
    assert event["pending_webhooks"] == 0


async def test_pause_flush_and_redeliver(api: Api, emu: StripeEmulator, receiver: Receiver) -> None:
    await api.http.post("/_emulator/webhooks/pause")
    await oauth_connect(api.http, RIVERBEND)
    for i in range(3):
        await api.post(f"/v1/accounts/{RIVERBEND}", {"metadata": {"n": str(i)}})
    await emu.webhooks.idle()
    assert receiver.received == []
    flushed = (await api.http.post("/_emulator/webhooks/flush")).json()
    assert flushed["sent"] == 3 and flushed["delivered"] == 3
    ids = [e["id"] for e in receiver.events]
    # Re-deliver the first event after the others: a duplicate, out of order, as Stripe may do.
    r = await api.http.post(f"/_emulator/webhooks/redeliver/{ids[0]}")
    assert r.status_code == 200 and r.json()["redelivery"] is True
    await api.http.post("/_emulator/webhooks/resume")
    await emu.webhooks.idle()
    assert [e["id"] for e in receiver.events] == [*ids, ids[0]]
    assert (await api.http.post("/_emulator/webhooks/redeliver/evt_nope")).status_code == 404
