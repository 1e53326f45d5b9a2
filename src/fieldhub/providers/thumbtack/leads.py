"""Thumbtack as a leads provider (capabilities/leads): register the business's webhook, send a reply as a message."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.leads.service import IncomingMessage
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.clients import client_for
from fieldhub.log import get_logger
from fieldhub.providers.thumbtack import credentials
from fieldhub.providers.thumbtack.webhooks import LEAD, MESSAGE, incoming_message

log = get_logger(__name__)
EVENTS = [LEAD, MESSAGE]


def webhook_url(env: OAuthEnv) -> str:
    return f"{env.settings.base_url}/webhooks/thumbtack"


async def setup(env: OAuthEnv, session: AsyncSession, conn: Connection) -> str:
    """Register (or re-register, with new credentials) this business's webhook for leads and messages."""
    user, password = credentials.issue(env, conn)
    await session.commit()  # the credentials exist before Thumbtack can send with them
    old = ((conn.settings or {}).get("webhook") or {}).get("webhook_id")
    try:
        async with client_for(env, conn) as client:
            if old:
                try:
                    await client.delete(f"/businesses/{conn.account_id}/webhooks/{old}")
                except ProviderError:  # gone already: the new one replaces it either way
                    log.info("thumbtack.webhook.old_not_deleted", connection_id=conn.id)
            reply = await client.post(
                f"/businesses/{conn.account_id}/webhooks",
                json={
                    "webhookURL": webhook_url(env),
                    "eventTypes": EVENTS,
                    "enabled": True,
                    "auth": {"username": user, "password": password},
                },
            )
        found = {"webhook_id": str(reply.json()["webhookID"]), "registered_at": utcnow().isoformat(), "error": ""}
    except (ProviderError, httpx.HTTPError, ValueError, KeyError) as e:
        log.warning("thumbtack.webhook.not_registered", connection_id=conn.id, error=type(e).__name__)
        found = {"webhook_id": "", "error": "Thumbtack did not take fieldhub's webhook; new leads can't arrive yet."}
    conn.settings = {**conn.settings, "webhook": {**conn.settings["webhook"], **found}}
    await session.commit()
    log.info("thumbtack.webhook.registered", connection_id=conn.id, ok=not found["error"])
    return found["error"] or "Thumbtack sends this business's new leads and messages to fieldhub."


async def send_message(env: OAuthEnv, conn: Connection, lead_remote_id: str, text: str) -> IncomingMessage:
    async with client_for(env, conn) as client:
        reply = await client.post(f"/negotiations/{lead_remote_id}/messages", json={"text": text})
    body = reply.json()
    data = body.get("data", body) if isinstance(body, dict) else {}
    data = {"negotiationID": lead_remote_id, "from": "Business", "text": text, **data}
    if not data.get("messageID"):
        raise ValueError("Thumbtack did not say which message it made")
    if not data.get("sentAt"):
        data["sentAt"] = datetime.now(UTC).isoformat()
    return incoming_message(data)
