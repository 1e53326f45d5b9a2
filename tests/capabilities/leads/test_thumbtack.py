"""Thumbtack leads through the hub: connect registers a webhook with generated Basic credentials, a lead posted at
the emulator lands in the Leads inbox with its customer, any order and any number of deliveries leave one lead and
one copy of each message, a forged delivery writes nothing, and Reply, Accept and Decline work (issue 19 item 1)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from fieldhub.capabilities.leads.models import Lead, LeadMessage, LeadStatus
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates.models import Estimate
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.webhooks.models import WebhookInbox
from tests.hub.oauth.conftest import consent

RIVERBEND = "286845156044809661"


async def _connect(app, owner, session):  # noqa: ANN001, ANN202
    emu = app.state.endpoints.emulators["thumbtack"]
    emu.webhook_transport = httpx.ASGITransport(app=app)  # deliveries reach this app in-process
    reply, _ = await consent(owner, "thumbtack", account=RIVERBEND)
    assert reply.status_code in (200, 303), reply.text
    conn = await session.scalar(select(Connection).where(Connection.provider == "thumbtack"))
    assert conn is not None
    return emu, conn


async def _post_lead(owner, emu, **body) -> dict:  # noqa: ANN001
    r = await owner.post("/emulators/thumbtack/_emulator/leads", json=body)
    assert r.status_code == 200, r.text
    await emu.idle()
    return r.json()


async def _count(session, model, *where) -> int:  # noqa: ANN001
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_issue19_item1_connect_registers_webhook_with_sealed_credentials(app, owner, session) -> None:
    emu, conn = await _connect(app, owner, session)
    hooks = list(emu.webhooks.values())
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook["businessID"] == RIVERBEND
    assert hook["webhookURL"].endswith("/webhooks/thumbtack")
    assert hook["eventTypes"] == ["NegotiationCreatedV4", "MessageCreatedV4"]
    assert hook["auth"]["username"] == f"fieldhub-{conn.id}"
    stored = json.dumps(conn.settings)
    assert hook["auth"]["password"] not in stored  # sealed by the vault, never kept in the clear
    assert conn.settings["webhook"]["webhook_id"] == hook["webhookID"]


async def test_issue19_item1_lead_arrives_with_matched_customer(app, owner, session, biz) -> None:
    known = await create_customer(session, biz.tenant.id, {"display_name": "J. Alvarez", "phone": "512-555-0147"})
    await session.commit()
    emu, _ = await _connect(app, owner, session)
    sent = await _post_lead(owner, emu)
    lead = await session.scalar(select(Lead).where(Lead.remote_id == sent["negotiationID"]))
    assert lead is not None and lead.details
    assert lead.customer_id == known.id  # matched by phone digits, no new customer
    assert await _count(session, Customer, Customer.tenant_id == biz.tenant.id) == 1
    assert lead.category == "Water Heater Installation"
    assert lead.location == {"city": "Austin", "state": "TX", "zipCode": "78704"}
    assert {"question": "Tank size", "answer": "40 gallons"} in lead.answers
    assert lead.lead_price == Decimal("23.45")
    assert lead.status == LeadStatus.NEW and lead.remote_status == "Open"
    assert await _count(session, LeadMessage, LeadMessage.lead_id == lead.id) == 1
    note = await session.scalar(select(Notification).where(Notification.kind == "lead.new"))
    assert note is not None and note.link == f"/leads/{lead.id}"
    page = await owner.get("/leads")
    assert "Jordan Alvarez" in page.text and "Water Heater Installation" in page.text


async def test_issue19_item1_new_customer_when_nothing_matches(app, owner, session, biz) -> None:
    emu, _ = await _connect(app, owner, session)
    await _post_lead(owner, emu, customer={"firstName": "Casey", "lastName": "Ng", "phone": "+1 737 555 0199"})
    customer = await session.scalar(select(Customer).where(Customer.tenant_id == biz.tenant.id))
    assert customer is not None and customer.display_name == "Casey Ng" and customer.service_city == "Austin"


async def test_issue19_item1_out_of_order_and_duplicate_deliveries_leave_one_of_each(app, owner, session) -> None:
    emu, _ = await _connect(app, owner, session)
    sent = await _post_lead(owner, emu, order="message_first", duplicate=True)
    kinds = [d["eventType"] for d in emu.deliveries]
    assert kinds == ["MessageCreatedV4", "MessageCreatedV4", "NegotiationCreatedV4", "NegotiationCreatedV4"]
    assert emu.summary()["delivered"] == 4
    # And once more from the top, as a retry after a lost reply would.
    await emu.flush(force=True)
    for delivery in list(emu.deliveries):
        emu.deliveries.append({**delivery, "id": len(emu.deliveries) + 1, "status": "pending", "attempts": []})
    await emu.flush(force=True)
    assert await _count(session, Lead) == 1
    lead = await session.scalar(select(Lead))
    assert lead is not None and lead.remote_id == sent["negotiationID"] and lead.details
    assert lead.customer_name == "Jordan Alvarez"  # the lead's own words replaced the message's display name
    assert await _count(session, LeadMessage) == 1
    assert await _count(session, WebhookInbox) == 2  # one row per event, the repeats refused as duplicates
    assert await _count(session, Notification, Notification.kind == "lead.new") == 1


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_issue19_item1_forged_webhook_is_refused_and_writes_nothing(app, owner, session, client) -> None:
    emu, conn = await _connect(app, owner, session)
    hook = next(iter(emu.webhooks.values()))
    body = {
        "event": {"eventType": "NegotiationCreatedV4", "triggeredAt": "2026-12-07T10:00:00Z", "webhookID": "1"},
        "data": {"negotiationID": "999", "business": {"businessID": RIVERBEND}, "customer": {"firstName": "Eve"}},
    }
    forged = [
        {},  # no credentials
        {"Authorization": _basic(f"fieldhub-{conn.id}", "guessed-password")},
        {"Authorization": _basic("fieldhub-999999", hook["auth"]["password"])},
        {"Authorization": "Bearer " + hook["auth"]["password"]},
    ]
    for headers in forged:
        r = await client.post("/webhooks/thumbtack", content=json.dumps(body), headers=headers)
        assert r.status_code == 401, (headers, r.text)
    # The right credentials for another business's event: refused too.
    other = {**body, "data": {**body["data"], "business": {"businessID": "286845156044809662"}}}
    good = {"Authorization": _basic(hook["auth"]["username"], hook["auth"]["password"])}
    r = await client.post("/webhooks/thumbtack", content=json.dumps(other), headers=good)
    assert r.status_code == 401
    assert await _count(session, WebhookInbox) == 0
    assert await _count(session, Lead) == 0
    # The genuine credentials are taken.
    r = await client.post("/webhooks/thumbtack", content=json.dumps(body), headers=good)
    assert r.status_code == 200, r.text


async def test_issue19_item1_reply_accept_and_decline(app, owner, session) -> None:
    emu, _ = await _connect(app, owner, session)
    sent = await _post_lead(owner, emu)
    lead = await session.scalar(select(Lead))
    assert lead is not None
    r = await owner.submit(f"/leads/{lead.id}/reply", {"text": "We can come Thursday at 9."})
    assert r.status_code == 303, r.text
    at_thumbtack = emu.messages[sent["negotiationID"]]
    assert at_thumbtack[-1]["from"] == "Business" and at_thumbtack[-1]["text"] == "We can come Thursday at 9."
    page = await owner.get(f"/leads/{lead.id}")
    assert "We can come Thursday at 9." in page.text
    r = await owner.submit(f"/leads/{lead.id}/reply", {"text": "   "})
    assert r.status_code == 422
    r = await owner.submit(f"/leads/{lead.id}/accept", {"into": "estimate"})
    assert r.status_code == 303 and r.headers["location"].startswith("/estimates/")
    estimate = await session.scalar(select(Estimate))
    assert estimate is not None and estimate.customer_id == lead.customer_id
    again = await owner.submit(f"/leads/{lead.id}/accept", {"into": "estimate"})
    assert again.headers["location"] == r.headers["location"]  # a second click opens the same estimate
    assert await _count(session, Estimate) == 1
    second = await _post_lead(owner, emu, customer={"firstName": "Sam", "lastName": "Lee", "phone": "5125550111"})
    other = await session.scalar(select(Lead).where(Lead.remote_id == second["negotiationID"]))
    assert other is not None
    r = await owner.submit(f"/leads/{other.id}/accept", {"into": "job"})
    assert r.status_code == 303 and r.headers["location"].startswith("/schedule/jobs/")
    third = await _post_lead(owner, emu, customer={"firstName": "Ana", "lastName": "Ruiz", "phone": "5125550112"})
    declined = await session.scalar(select(Lead).where(Lead.remote_id == third["negotiationID"]))
    assert declined is not None
    r = await owner.submit(f"/leads/{declined.id}/decline")
    assert r.status_code == 303
    await session.refresh(declined)
    assert declined.status == LeadStatus.DECLINED
