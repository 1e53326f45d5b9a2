"""Dropbox Sign callbacks: the JSON in the multipart field `json` (or a JSON body), its event_hash checked, the
signature request handed to e-signatures, and the answer Dropbox Sign needs word for word.

event_hash = hex HMAC-SHA256(API key, event_time + event_type), as the official SDK's EventCallbackHelper checks
it. It covers the event, not the body; the inbox keeps each event once (request, type, time, signature), so a
replay of a captured callback is stored once and, since the capability only moves an envelope forward, changes
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fieldhub.capabilities.esign import service as esign
from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext
from fieldhub.providers.dropbox_sign.esign import update_from

# Anything else (even "OK") is a failure to Dropbox Sign, retried for about three days.
REPLY = "Hello API Event Received"


def unwrap(headers: dict[str, str], body: bytes) -> bytes:
    """The callback's JSON: the `json` field of a multipart body, or the body itself."""
    kind = headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return body
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "json":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return b""


def _event(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    event = payload.get("event") if isinstance(payload, dict) else None
    return event if isinstance(event, dict) else None


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    event = _event(body)
    if event is None:
        return False
    stamp, kind, sent = (str(event.get(k, "")) for k in ("event_time", "event_type", "event_hash"))
    expected = hmac.new(secret.encode(), (stamp + kind).encode(), hashlib.sha256).hexdigest()
    return bool(stamp and kind) and hmac.compare_digest(expected, sent)


def parse(payload: Any) -> InboundEvent:
    event = payload["event"]
    kind, stamp = str(event["event_type"]), str(event["event_time"])
    meta = event.get("event_metadata") or {}
    request = payload.get("signature_request") or {}
    subject = str(request.get("signature_request_id") or meta.get("reported_for_account_id") or "")
    return InboundEvent(
        id=f"{subject}:{kind}:{stamp}:{meta.get('related_signature_id') or ''}"[:200],
        type=kind,
        account=str(meta.get("reported_for_account_id") or "") or None,
        payload=payload,
    )


async def handle(ctx: WebhookContext) -> bool:
    request = ctx.event.payload.get("signature_request")
    if ctx.connection is None or not isinstance(request, dict):
        return False  # account_confirmed, callback_test, template events: nothing to do
    return await esign.apply_update(ctx.session, ctx.env, ctx.connection, update_from(request, ctx.event.type))
