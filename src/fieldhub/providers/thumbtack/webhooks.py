"""Thumbtack webhooks: HTTP Basic credentials fieldhub generated for this business's webhook, then leads and messages.

Each connection registers its own webhook (leads.py) with a username naming the connection and a random password
kept sealed in the vault, so a delivery is checked against the one connection it claims to be for and must be
about that connection's business. Thumbtack's events carry no event id: a lead is `NegotiationCreatedV4:<id>` and a
message `MessageCreatedV4:<messageID>` in the inbox, so a repeated delivery is stored once; the Leads inbox's
receive_* add a second guard for a message that comes both from the reply we sent and from Thumbtack's event.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fieldhub.capabilities.leads import service as leads
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext
from fieldhub.log import get_logger
from fieldhub.providers.thumbtack import credentials

log = get_logger(__name__)
LEAD, MESSAGE = "NegotiationCreatedV4", "MessageCreatedV4"
# What Thumbtack's events bring in (fieldhub check): leads and the messages on them.
IMPORTS = ("lead", "lead_message")


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _account_of(payload: Any) -> str | None:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    business = data.get("business")
    found = business.get("businessID") if isinstance(business, dict) else data.get("businessID")
    return str(found) if found else None


async def delivery_secret(env: OAuthEnv, headers: dict[str, str], body: bytes) -> str | None:
    """The credentials the delivery must carry ("user:password"): those of the connection its username names, and
    only if the event is about that connection's business. None for anything else (the route answers 401)."""
    sent = basic_credentials(headers)
    if sent is None:
        return None
    async with env.sessionmaker() as session:
        conn = await credentials.connection_named(session, sent[0])
        if conn is None:
            return None
        try:
            account = _account_of(json.loads(body))
        except ValueError:
            account = None
        if account is not None and account != conn.account_id:
            log.warning("thumbtack.webhook.wrong_business", connection_id=conn.id)
            return None
        password = credentials.password(env, conn)
    return f"{sent[0]}:{password}" if password else None


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    sent = basic_credentials(headers)
    if sent is None or not secret:
        return False
    return hmac.compare_digest(f"{sent[0]}:{sent[1]}".encode(), secret.encode())


def parse(payload: Any) -> InboundEvent:
    event, data = payload["event"], payload["data"]
    kind = event["eventType"]
    if not isinstance(data, dict) or not isinstance(kind, str):
        raise ValueError("not a Thumbtack event")
    if kind == LEAD:
        ident = f"{LEAD}:{data['negotiationID']}"
    elif kind == MESSAGE:
        ident = f"{MESSAGE}:{data['messageID']}"
    else:
        ident = f"{kind}:{event.get('webhookID', '')}:{event.get('triggeredAt', '')}"
    return InboundEvent(id=ident, type=kind, account=_account_of(payload), payload=payload)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _price(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value).replace("$", "").replace(",", "").strip()).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _text(value: Any) -> str:
    if isinstance(value, dict):  # category may come as {"categoryID", "name"}
        value = value.get("name", "")
    return str(value or "")


def incoming_lead(data: dict[str, Any]) -> leads.IncomingLead:
    customer = data.get("customer") or {}
    request = data.get("request") or {}
    name = " ".join(p for p in (customer.get("firstName"), customer.get("lastName")) if p) or _text(
        customer.get("displayName")
    )
    place = request.get("location") or {}
    answers = [
        {"question": _text(d.get("question")), "answer": _text(d.get("answer"))}
        for d in request.get("details") or []
        if isinstance(d, dict)
    ]
    return leads.IncomingLead(
        remote_id=str(data["negotiationID"]),
        customer_name=name[:200],
        customer_phone=_text(customer.get("phone"))[:40],
        customer_email=_text(customer.get("email"))[:254],
        category=_text(request.get("category"))[:200],
        description=_text(request.get("description")),
        location={k: _text(place.get(k)) for k in ("city", "state", "zipCode") if place.get(k)},
        answers=answers,
        lead_price=_price(data.get("leadPrice")),
        remote_status=_text(data.get("status"))[:40],
        created_at=_when(data.get("createdAt")),
    )


def incoming_message(data: dict[str, Any]) -> leads.IncomingMessage:
    customer = data.get("customer") or {}
    return leads.IncomingMessage(
        lead_remote_id=str(data["negotiationID"]),
        remote_id=str(data["messageID"]),
        sender="business" if str(data.get("from", "")).lower() == "business" else "customer",
        text=_text(data.get("text")),
        sent_at=_when(data.get("sentAt")) or datetime.now(UTC),
        customer_name=_text(customer.get("displayName"))[:200],
    )


async def handle(ctx: WebhookContext) -> bool:
    conn: Connection | None = ctx.connection
    if conn is None:
        return False
    data = ctx.event.payload["data"]
    if ctx.event.type == LEAD:
        return await leads.receive_lead(ctx.session, conn, incoming_lead(data))
    if ctx.event.type == MESSAGE:
        return await leads.receive_message(ctx.session, conn, incoming_message(data))
    return False
