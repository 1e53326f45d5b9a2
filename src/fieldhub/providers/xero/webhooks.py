"""Xero webhooks: `x-xero-signature` checked, the events parsed, applied by the accounting capability's inbound.

A delivery names changes only ("INVOICE <id> UPDATE in tenant <id>"); `handle` hands them to the capability,
which drops the echoes of fieldhub's own writes from the ledger alone, reads each other object from Xero and
applies it through the same function the If-Modified-Since poll uses. Xero sends no events for payments:
a payment made in Xero updates its invoice (an INVOICE event), and the poll brings the payment itself.

Xero wants an empty 200 within 5 seconds (EMPTY_REPLY) and a 401 for a wrong signature. Its Intent to Receive
sends deliveries with no events, signed rightly or wrongly: a right one is an event with nothing to apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext

HEADER = "x-xero-signature"
EMPTY_REPLY = True  # Xero's webhook contract: 200 with no body
KINDS = {"CONTACT": "customer", "INVOICE": "invoice", "CREDITNOTE": "refund"}
OPERATIONS = {"CREATE": "Create", "UPDATE": "Update"}


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """x-xero-signature is base64(HMAC-SHA256(key = the webhook signing key, message = the raw body))."""
    given = headers.get(HEADER, "").strip().encode("utf-8", "replace")
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return bool(secret and given) and hmac.compare_digest(base64.b64encode(digest), given)


def parse(payload: Any) -> InboundEvent:
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ValueError("not a Xero webhook delivery")
    notices = []
    for event in payload["events"]:
        if not isinstance(event, dict):
            raise ValueError("an event is not an object")
        notices.append(
            {
                "account": str(event["tenantId"]),
                "category": str(event["eventCategory"]),
                "id": str(event["resourceId"]),
                "operation": OPERATIONS.get(str(event["eventType"]), str(event["eventType"]).title()),
                "at": str(event.get("eventDateUtc") or ""),
            }
        )
    text = "\n".join(f"{n['account']}:{n['category']}:{n['id']}:{n['operation']}:{n['at']}" for n in notices)
    key = hashlib.sha256((text or str(payload.get("entropy", ""))).encode()).hexdigest()
    kind = "xero.intent_to_receive" if not notices else "xero.events"
    return InboundEvent(
        id=f"xero:{key}", type=kind, account=notices[0]["account"] if notices else None, payload={"notices": notices}
    )


async def handle(ctx: WebhookContext) -> bool:
    """Each event as the accounting capability's (account, kind, id, operation), read and applied there."""
    from fieldhub.capabilities.accounting import inbound
    from fieldhub.providers.xero.ledger import moment

    notices = [
        n | {"kind": KINDS.get(n["category"], ""), "at": at.isoformat() if (at := moment(n.get("at"))) else ""}
        for n in ctx.event.payload["notices"]
        if n["category"] in KINDS
    ]
    if not notices:
        return False  # the Intent to Receive, or a category fieldhub does not read
    return await inbound.apply_notices(
        ctx.session, ctx.env, ctx.provider, ctx.connection, notices, received_at=ctx.received_at
    )
