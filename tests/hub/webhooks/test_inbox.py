"""The webhook route and inbox: signature first and nothing written when refused, dedupe, and the crash sweep."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select, update

from fieldhub.db import utcnow
from fieldhub.hub.webhooks import inbox
from fieldhub.hub.webhooks.models import InboxState, WebhookInbox
from fieldhub.providers.stripe import webhooks as stripe_webhooks
from fieldhub.providers.stripe.emulator.webhooks import signature_header

SECRET = "demo-stripe-webhook-secret"  # what test mode configures (settings.demo_credentials)


def _event(event_id: str = "evt_1", kind: str = "charge.succeeded") -> str:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "account": "acct_x", "data": {"object": {}}})


async def _rows(app) -> int:  # noqa: ANN001
    async with app.state.sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(WebhookInbox))


async def _post(client, body: str | bytes, header: str | None):  # noqa: ANN001, ANN202
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": header} if header is not None else {})
    raw = body.encode() if isinstance(body, str) else body
    return await client.post("/webhooks/stripe", content=raw, headers=headers)


def test_fact_sheet_vector_and_official_sdk_agree() -> None:
    body = b'{"id":"evt_test","object":"event"}'
    header = "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
    headers = {"stripe-signature": header}
    assert stripe_webhooks.verify(headers, body, "whsec_test_secret", now=1700000000)
    assert stripe_webhooks.verify(headers, body, "whsec_test_secret", now=1700000000 + 300)
    assert not stripe_webhooks.verify(headers, body, "whsec_test_secret", now=1700000000 + 301)
    assert not stripe_webhooks.verify(headers, body + b" ", "whsec_test_secret", now=1700000000)
    assert not stripe_webhooks.verify(headers, body, "whsec_other", now=1700000000)
    # Whatever the official SDK accepts or refuses, so do we.
    now = int(time.time())
    cases = {
        "fresh": stripe.WebhookSignature._compute_signature(f"{now}.{body.decode()}", "whsec_test_secret"),
        "stale": stripe.WebhookSignature._compute_signature(f"{now - 400}.{body.decode()}", "whsec_test_secret"),
    }
    for name, stamp in (("fresh", now), ("stale", now - 400)):
        sdk_header = f"t={stamp},v1={cases[name]}"
        try:
            stripe.WebhookSignature.verify_header(body.decode(), sdk_header, "whsec_test_secret", 300)
            sdk_ok = True
        except stripe.SignatureVerificationError:
            sdk_ok = False
        assert stripe_webhooks.verify({"stripe-signature": sdk_header}, body, "whsec_test_secret") is sdk_ok
        assert sdk_ok is (name == "fresh")


def test_several_v1_values_and_v0_ignored() -> None:
    body = b"{}"
    now = int(time.time())
    good = signature_header(body.decode(), "whsec_new", now).split("v1=")[1]
    header = f"t={now},v1={'0' * 64},v0={good},v1={good}"
    assert stripe_webhooks.verify({"stripe-signature": header}, body, "whsec_new")
    assert not stripe_webhooks.verify({"stripe-signature": f"t={now},v0={good}"}, body, "whsec_new")
    assert not stripe_webhooks.verify({"stripe-signature": f"v1={good}"}, body, "whsec_new")
    assert not stripe_webhooks.verify({"stripe-signature": f"t=abc,v1={good}"}, body, "whsec_new")
    assert not stripe_webhooks.verify({}, body, "whsec_new")


async def test_refusals_write_nothing(app, client) -> None:  # noqa: ANN001
    body = _event()
    now = int(time.time())
    assert (await _post(client, body, None)).status_code == 401
    assert (await _post(client, body, signature_header(body, "wrong-secret", now))).status_code == 401
    stale = await _post(client, body, signature_header(body, SECRET, now - 301))
    assert stale.status_code == 401
    tampered = await _post(client, body.replace("evt_1", "evt_2"), signature_header(body, SECRET, now))
    assert tampered.status_code == 401
    for malformed in ("not json", json.dumps({"id": "evt_1", "object": "event"}), "[]"):
        assert (await _post(client, malformed, signature_header(malformed, SECRET, now))).status_code == 400
    huge = json.dumps({"id": "evt_big", "object": "event", "type": "x", "data": {"object": {"pad": "x" * 1_100_000}}})
    assert (await _post(client, huge, signature_header(huge, SECRET, now))).status_code == 413
    assert (await client.post("/webhooks/no_such_provider", content=b"{}")).status_code == 404
    assert await _rows(app) == 0


async def test_stored_once_and_unknown_account_ignored(app, client) -> None:  # noqa: ANN001
    body = _event("evt_dup")
    for _ in range(3):
        r = await _post(client, body, signature_header(body, SECRET, int(time.time())))
        assert r.status_code == 200
    assert r.json() == {"received": True, "duplicate": True}
    async with app.state.sessionmaker() as s:
        row = (await s.scalars(select(WebhookInbox))).one()
    assert row.event_id == "evt_dup" and row.body == body and row.state == InboxState.IGNORED
    assert row.tenant_id is None and "stripe-signature" not in row.headers


async def test_sweep_processes_what_a_crash_left(app) -> None:  # noqa: ANN001
    from fieldhub.hub.oauth.env import env_for

    env = env_for(app)
    event = stripe_webhooks.parse(json.loads(_event("evt_crash")))
    async with app.state.sessionmaker() as s:
        row = await inbox.store(s, "stripe", event, _event("evt_crash").encode(), {})
        assert row is not None
        await s.commit()
    # The process died before the background task ran: the row sits in `received`.
    assert await inbox.sweep(env) == 0  # too fresh: a task may still be on it
    async with app.state.sessionmaker() as s:
        await s.execute(update(WebhookInbox).values(received_at=utcnow() - timedelta(minutes=5)))
        await s.commit()
    assert await inbox.sweep(env) == 1
    async with app.state.sessionmaker() as s:
        row = (await s.scalars(select(WebhookInbox))).one()
    assert row.state == InboxState.IGNORED and row.attempts == 1
    assert await inbox.sweep(env) == 0  # done is done
    assert await inbox.process(env, row.id) == InboxState.IGNORED


@pytest.mark.parametrize("payload", [[], {"object": "event"}, {"object": "event", "id": "evt", "type": "x"}])
def test_parse_refuses_malformed(payload) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        stripe_webhooks.parse(payload)
