"""DocuSign Connect: each message's HMAC checked (X-DocuSign-Signature-1, -2, ...), its envelope handed to e-signatures.

Connect signs the raw body with every active HMAC key, one header per key (-1, -2, ... while a key is rolled):
any one matching the configured key is enough. A message carries no id of its own; the envelope, the event
and the time Connect generated it name it, so Connect's retries and a replay of a captured message are the
same event to the inbox (stored once), and the capability never moves an envelope back to an earlier status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from fieldhub.capabilities.esign import service as esign
from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext
from fieldhub.providers.docusign.esign import update_from

MAX_KEYS = 100  # DocuSign allows up to 100 Connect HMAC keys per account


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    matched = False
    for n in range(1, MAX_KEYS + 1):
        sent = headers.get(f"x-docusign-signature-{n}")
        if sent is None:
            break
        matched |= hmac.compare_digest(expected, sent.strip().encode())
    return matched


def parse(payload: Any) -> InboundEvent:
    if not isinstance(payload, dict):
        raise ValueError("not a Connect message")
    data = payload["data"]
    event, envelope_id = str(payload["event"]), str(data["envelopeId"])
    if not event or not envelope_id or not isinstance(data.get("envelopeSummary"), dict):
        raise ValueError("a Connect message without an event or an envelope")
    generated = str(payload.get("generatedDateTime", ""))
    return InboundEvent(
        id=f"{envelope_id}:{event}:{generated}"[:200],
        type=event,
        account=str(data.get("accountId") or "") or None,
        payload=payload,
    )


async def handle(ctx: WebhookContext) -> bool:
    if ctx.connection is None:
        return False
    summary = ctx.event.payload["data"]["envelopeSummary"]
    return await esign.apply_update(ctx.session, ctx.env, ctx.connection, update_from(summary))
