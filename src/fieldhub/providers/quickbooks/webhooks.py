"""QuickBooks webhooks: `intuit-signature` checked, classic and CloudEvents bodies parsed, applied by inbound.py.

A notification carries only ids ("Payment 145 was created in realm 9130…"); `handle` drops the echoes
of fieldhub's own writes from the ledger alone (hub/sync/echoes.py: no read, no lease), reads each other
object from QuickBooks and applies it through the same function the CDC catch-up uses (the accounting
capability's inbound). One body is
one inbox row: its id (the dedupe key) is built from what it names — realm, entity, id, operation and
lastUpdated for the classic format, the event ids for CloudEvents — so a redelivery of the same
notification is stored once, and processing is idempotent besides (the ledger knows what is applied).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext

KEY = "quickbooks"
HEADER = "intuit-signature"
# CloudEvents verbs back to the classic operation names (facts §1.9).
OPERATIONS = {"created": "Create", "updated": "Update", "deleted": "Delete", "voided": "Void", "merged": "Merge"}
MAX_ID = 200  # webhook_inbox.event_id


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """base64(HMAC-SHA256(key = the app's verifier token, message = the raw body)), compared in constant time."""
    given = headers.get(HEADER, "").strip()
    if not given or not secret:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.encode("utf-8", "replace"))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise ValueError(f"notification without {what}")
    return str(value).strip()


def _classic(payload: dict[str, Any]) -> list[dict[str, str]]:
    notices = []
    notifications = payload.get("eventNotifications")
    if not isinstance(notifications, list) or not notifications:
        raise ValueError("no eventNotifications")
    for notification in notifications:
        if not isinstance(notification, dict):
            raise ValueError("a notification is not an object")
        realm = _text(notification.get("realmId"), "realmId")
        entities = (notification.get("dataChangeEvent") or {}).get("entities")
        if not isinstance(entities, list):
            raise ValueError("no dataChangeEvent.entities")
        for entity in entities:
            if not isinstance(entity, dict):
                raise ValueError("an entity is not an object")
            notices.append(
                {
                    "realm": realm,
                    "entity": _text(entity.get("name"), "name"),
                    "id": _text(entity.get("id"), "id"),
                    "operation": _text(entity.get("operation"), "operation"),
                    "at": str(entity.get("lastUpdated") or ""),
                    "deleted_id": str(entity.get("deletedId") or ""),
                }
            )
    return notices


def _cloud(payload: list[Any]) -> tuple[list[dict[str, str]], list[str]]:
    notices, ids = [], []
    for event in payload:
        if not isinstance(event, dict) or "specversion" not in event:
            raise ValueError("not a CloudEvent")
        ids.append(_text(event.get("id"), "id"))
        kind = _text(event.get("type"), "type").split(".")
        if len(kind) < 3 or kind[0] != "qbo":
            raise ValueError("not a QuickBooks event type")
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        notices.append(
            {
                "realm": _text(event.get("intuitaccountid"), "intuitaccountid"),
                "entity": kind[1],  # lower case; inbound matches entities case-insensitively
                "id": _text(event.get("intuitentityid"), "intuitentityid"),
                "operation": OPERATIONS.get(kind[2], kind[2].title()),
                "at": str(event.get("time") or ""),
                "deleted_id": str(data.get("deletedid") or data.get("deletedId") or ""),
            }
        )
    return notices, ids


def _dedupe_key(prefix: str, parts: list[str]) -> str:
    if len(parts) == 1 and len(prefix) + len(parts[0]) + 1 <= MAX_ID:
        return f"{prefix}:{parts[0]}"
    return f"{prefix}:" + hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def parse(payload: Any) -> InboundEvent:
    """Either format into one event whose payload lists the changes as `notices`; ValueError when malformed."""
    if isinstance(payload, list):
        if not payload:
            raise ValueError("an empty CloudEvents batch")
        notices, ids = _cloud(payload)
        event_id = _dedupe_key("ce", ids)
        kind = str(payload[0].get("type")) if len(payload) == 1 else "qbo.cloudevents"
    elif isinstance(payload, dict):
        notices = _classic(payload)
        if not notices:
            raise ValueError("a notification without entities")
        parts = [f"{n['realm']}:{n['entity']}:{n['id']}:{n['operation']}:{n['at']}" for n in notices]
        event_id = _dedupe_key("qbo", parts)
        kind = "qbo.notification"
    else:
        raise ValueError("not a QuickBooks notification")
    return InboundEvent(id=event_id, type=kind, account=notices[0]["realm"], payload={"notices": notices})


async def handle(ctx: WebhookContext) -> bool:
    """Each notice as the accounting capability's (account, kind, id, operation), read and applied there."""
    from fieldhub.capabilities.accounting import inbound
    from fieldhub.providers.quickbooks.ledger import KIND_OF, parse_time

    kinds = {entity.lower(): kind for entity, kind in KIND_OF.items()}
    notices = []
    for n in ctx.event.payload["notices"]:
        at, kind = parse_time(n.get("at")), kinds.get(str(n["entity"]).lower(), "")
        notices.append(
            n | {"account": n["realm"], "kind": kind, "id": str(n["id"]), "at": at.isoformat() if at else ""}
        )
    return await inbound.apply_notices(
        ctx.session, ctx.env, ctx.provider, ctx.connection, notices, received_at=ctx.received_at
    )
