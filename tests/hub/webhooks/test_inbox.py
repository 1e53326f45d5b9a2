"""The webhook route and inbox: signature first and nothing written when refused, dedupe, and the crash sweep."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select, update

from fieldhub.db import utcnow
from fieldhub.hub.webhooks import inbox
from fieldhub.hub.webhooks.models import InboxState, WebhookInbox
from fieldhub.providers.quickbooks.emulator.webhooks import sign as qbo_sign
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
        row = await inbox.store(s, "stripe", event, _event("evt_crash"), {})
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


# ---------------------------------------------------------------- issue 14 item 7: signed bodies that are odd


def _stripe_signed(body: bytes) -> dict[str, str]:
    # Stripe's scheme over the raw bytes (the emulator's signature_header takes text, and these bytes aren't UTF-8).
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}


def _qbo_signed(body: bytes) -> dict[str, str]:
    return {"intuit-signature": qbo_sign(body, "demo-quickbooks-webhook-secret")}


def _stripe_event(**data: object) -> dict:
    return {"id": "evt_odd", "object": "event", "type": "charge.succeeded", "data": {"object": data}}


def _qbo_event(**data: object) -> dict:
    entity = {"name": "Payment", "id": "1", "operation": "Create", "lastUpdated": "2026-01-01T00:00:00Z", **data}
    return {"eventNotifications": [{"realmId": "9130", "dataChangeEvent": {"entities": [entity]}}]}


def _nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = {"a": [value]}
    return value


DEEP = '{"a": [' * 5_000 + "1" + "]}" * 5_000  # json.dumps can't write it: its encoder recurses too
ODD_BODIES = {
    # json's decoder raises RecursionError (not ValueError) past ~1,000 levels.
    "deep_nesting": lambda event: json.dumps(event(pad="PAD")).replace('"PAD"', DEEP).encode(),
    # Nested past the inbox's bound but well within json's: refused all the same.
    "deep_but_parseable": lambda event: json.dumps(event(pad=_nested(200))).encode(),
    # json.loads(bytes) detects UTF-16 and parses it; the inbox stored body.decode("utf-8") and raised.
    "utf16": lambda event: json.dumps(event()).encode("utf-16"),
    "utf16_le_no_bom": lambda event: json.dumps(event()).encode("utf-16-le"),
    # A lone surrogate encoded as UTF-8 bytes: json.loads(bytes) takes it (surrogatepass), UTF-8 doesn't.
    "encoded_lone_surrogate": lambda event: json.dumps(event(note="\ud800"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    ),
    # An escaped one is valid JSON and ASCII, but PostgreSQL can't store the string it becomes.
    "escaped_lone_surrogate": lambda event: json.dumps(event(note="\ud800")).encode(),
    "escaped_nul": lambda event: json.dumps(event(note="a\x00b")).encode(),
}


@pytest.mark.parametrize("odd", sorted(ODD_BODIES))
@pytest.mark.parametrize("provider", ["stripe", "quickbooks"])
async def test_issue14_item7_signed_odd_body_is_400_and_writes_nothing(app, client, provider, odd) -> None:  # noqa: ANN001
    """Deep nesting (RecursionError), UTF-16 and lone surrogates (UnicodeDecodeError) answered 500 after the
    signature passed; each is a malformed event now: 400 with the project's error body, nothing stored."""
    event, signed = (_stripe_event, _stripe_signed) if provider == "stripe" else (_qbo_event, _qbo_signed)
    body = ODD_BODIES[odd](event)
    headers = {"Content-Type": "application/json", **signed(body)}
    r = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("Malformed event")
    assert await _rows(app) == 0


COLUMN = WebhookInbox.__table__.c.event_id.type.length  # type: ignore[attr-defined]


async def test_issue14_item7_event_id_longer_than_the_inbox_column_is_400(app, client) -> None:  # noqa: ANN001
    """A 10,000-character Stripe event id fails the VARCHAR(200) insert on PostgreSQL (500, retried for days);
    SQLite stored it. Refused as malformed on both, nothing written; an id that fits is stored."""
    for event_id, status in (("evt_" + "x" * 10_000, 400), ("evt_" + "x" * (COLUMN - 4), 200)):
        body = json.dumps(_stripe_event() | {"id": event_id}).encode()
        r = await client.post("/webhooks/stripe", content=body, headers=_stripe_signed(body))
        assert r.status_code == status, r.text
    async with app.state.sessionmaker() as s:
        assert [len(i) for i in await s.scalars(select(WebhookInbox.event_id))] == [COLUMN]


def test_issue14_item7_read_event_bounds_depth_without_recursion() -> None:
    ok = json.dumps(_stripe_event(pad=_nested(inbox.MAX_DEPTH // 2 - 2))).encode()
    text, event = inbox.read_event(stripe_webhooks, ok)
    assert event.id == "evt_odd" and text == ok.decode()
    with pytest.raises(inbox.Malformed, match="nested more than"):
        inbox.read_event(stripe_webhooks, json.dumps(_stripe_event(pad=_nested(inbox.MAX_DEPTH))).encode())
    with pytest.raises(inbox.Malformed, match="not an event"):
        inbox.read_event(stripe_webhooks, b'{"object": "event", "id": "evt"}')
