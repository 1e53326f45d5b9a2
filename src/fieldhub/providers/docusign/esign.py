"""DocuSign as a signing service (capabilities/esign): envelopes through the eSignature REST API v2.1.

An envelope carries the estimate PDF, one signer with a signHere tab on the signature anchor and a dateSigned
tab on the date anchor, our send key as its transactionId (how a send whose reply was lost is found again), and
an eventNotification asking Connect for the envelope's events, HMAC-signed, with its recipients (the decline
reason is on the signer). An embedded signer has a clientUserId and gets no email from DocuSign.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from fieldhub.capabilities.esign import Request, Sent, Update
from fieldhub.capabilities.esign.models import EnvelopeStatus
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.http import ProviderClient

DOES = ("Sends estimates for signature (email or on this device) and follows them to signed or declined",)
EVENTS = ["envelope-sent", "envelope-delivered", "envelope-completed", "envelope-declined", "envelope-voided"]
STATUSES = {
    "sent": EnvelopeStatus.SENT,
    "delivered": EnvelopeStatus.DELIVERED,
    "signed": EnvelopeStatus.DELIVERED,  # a signer signed, others have not: still open
    "completed": EnvelopeStatus.SIGNED,
    "declined": EnvelopeStatus.DECLINED,
    "voided": EnvelopeStatus.VOIDED,
}
EXPIRED = "Envelope has expired."


def _path(conn: Connection, rest: str = "") -> str:
    return f"/v2.1/accounts/{conn.account_id}/envelopes{rest}"


def when(value: str | None) -> datetime | None:
    """DocuSign's timestamps (seven fractional digits, Z) as aware UTC."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def update_from(envelope: dict[str, Any]) -> Update:
    """An envelope (API reply, or Connect's envelopeSummary) as the capability's Update."""
    raw = str(envelope.get("status", "")).lower()
    status = STATUSES.get(raw, EnvelopeStatus.SENT)
    reason = str(envelope.get("voidedReason") or "")
    if status is EnvelopeStatus.VOIDED and reason == EXPIRED:
        status = EnvelopeStatus.EXPIRED
    signers = (envelope.get("recipients") or {}).get("signers") or []
    declined = next((s.get("declinedReason", "") for s in signers if s.get("status") == "declined"), "")
    return Update(
        remote_id=str(envelope["envelopeId"]),
        status=status,
        at=when(envelope.get("statusChangedDateTime")),
        delivered_at=when(envelope.get("deliveredDateTime")),
        signed_at=when(envelope.get("completedDateTime")),
        declined_at=when(envelope.get("declinedDateTime")),
        voided_at=when(envelope.get("voidedDateTime")),
        decline_reason=declined,
        void_reason=reason,
    )


def definition(request: Request) -> dict[str, Any]:
    signer: dict[str, Any] = {
        "email": request.signer_email,
        "name": request.signer_name,
        "recipientId": "1",
        "routingOrder": "1",
        "tabs": {
            "signHereTabs": [
                {
                    "anchorString": request.signature.text,
                    "anchorUnits": "pixels",
                    "anchorXOffset": "0",
                    "anchorYOffset": "0",
                }
            ],
        },
    }
    if request.date is not None:
        signer["tabs"]["dateSignedTabs"] = [{"anchorString": request.date.text, "anchorUnits": "pixels"}]
    if request.embedded:
        signer["clientUserId"] = request.signer_key
    return {
        "emailSubject": request.subject[:100],
        "emailBlurb": request.message[:10000],
        "status": "sent",
        "documents": [
            {
                "documentBase64": base64.b64encode(request.pdf).decode(),
                "name": request.title,
                "fileExtension": "pdf",
                "documentId": "1",
            }
        ],
        "recipients": {"signers": [signer]},
        "eventNotification": {
            "url": request.webhook_url,
            "includeHMAC": "true",
            "requireAcknowledgment": "true",
            "loggingEnabled": "true",
            "eventData": {"format": "json", "version": "restv2.1", "includeData": ["recipients"]},
            "events": EVENTS,
        },
        "transactionId": request.send_key,
    }


async def send(client: ProviderClient, conn: Connection, request: Request) -> Sent:
    reply = await client.post(_path(conn), json=definition(request), bucket=conn.account_id or "")
    return Sent(remote_id=reply.json()["envelopeId"])


async def find(client: ProviderClient, conn: Connection, send_key: str) -> Sent | None:
    reply = await client.get(_path(conn), params={"transaction_ids": send_key}, bucket=conn.account_id or "")
    found = reply.json().get("envelopes") or []
    return Sent(remote_id=found[0]["envelopeId"]) if found else None


async def signing_url(
    client: ProviderClient, conn: Connection, remote_id: str, request: Request, return_url: str
) -> str:
    body = {
        "returnUrl": return_url,
        "authenticationMethod": "none",
        "email": request.signer_email,
        "userName": request.signer_name,
        "clientUserId": request.signer_key,
        "recipientId": "1",
    }
    reply = await client.post(_path(conn, f"/{remote_id}/views/recipient"), json=body, bucket=conn.account_id or "")
    return str(reply.json()["url"])


async def status(client: ProviderClient, conn: Connection, remote_id: str) -> Update:
    reply = await client.get(
        _path(conn, f"/{remote_id}"), params={"include": "recipients"}, bucket=conn.account_id or ""
    )
    return update_from(reply.json())


async def void(client: ProviderClient, conn: Connection, remote_id: str, reason: str) -> None:
    body = {"status": "voided", "voidedReason": reason[:200]}
    await client.put(_path(conn, f"/{remote_id}"), json=body, bucket=conn.account_id or "")


async def documents(client: ProviderClient, conn: Connection, remote_id: str) -> tuple[bytes, bytes]:
    bucket = conn.account_id or ""
    signed = await client.get(_path(conn, f"/{remote_id}/documents/combined"), bucket=bucket)
    certificate = await client.get(_path(conn, f"/{remote_id}/documents/certificate"), bucket=bucket)
    return signed.content, certificate.content
