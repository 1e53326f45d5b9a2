"""Dropbox Sign as a signing service (capabilities/esign): signature requests through API v3.

Email signing is /signature_request/send; signing on this device is /signature_request/create_embedded (it needs
our app's client_id) and the signer's /embedded/sign_url, coming back to signing_redirect_url. The PDF goes as
files[0] in multipart; the signature and date fields are placed where the estimate's anchors are drawn
(form_fields_per_document, from the page's top-left). Dropbox Sign has no idempotency key: our send key is in
metadata, and a send whose reply was lost is looked for by it. The audit trail is the signed PDF's last page.
"""

from __future__ import annotations

import io
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from pypdf import PdfReader, PdfWriter

from fieldhub.capabilities.esign import Request, Sent, Update
from fieldhub.capabilities.esign.models import EnvelopeStatus
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.http import ProviderClient

DOES = ("Sends estimates for signature (email or on this device) and follows them to signed or declined",)
LETTER_HEIGHT = 792.0
SIG_W, SIG_H = 220, 30


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def update_from(req: dict[str, Any], event: str = "") -> Update:
    """A signature request (API reply or callback) as the capability's Update."""
    sigs = req.get("signatures") or []
    viewed = [s.get("last_viewed_at") for s in sigs if s.get("last_viewed_at")]
    signed = [s.get("signed_at") for s in sigs if s.get("signed_at")]
    declined = next((s for s in sigs if s.get("status_code") == "declined"), None)
    base: dict[str, Any] = {
        "remote_id": str(req["signature_request_id"]),
        "delivered_at": _when(min(viewed, default=0)),
    }
    if event == "signature_request_canceled":
        return Update(status=EnvelopeStatus.VOIDED, void_reason="Canceled at Dropbox Sign.", **base)
    if req.get("is_complete"):
        return Update(status=EnvelopeStatus.SIGNED, signed_at=_when(max(signed, default=0)), **base)
    if req.get("is_declined") or declined is not None:
        return Update(
            status=EnvelopeStatus.DECLINED, decline_reason=(declined or {}).get("decline_reason") or "", **base
        )
    if event == "signature_request_expired" or any(s.get("status_code") == "expired" for s in sigs):
        return Update(status=EnvelopeStatus.EXPIRED, void_reason="Expired at Dropbox Sign.", **base)
    return Update(status=EnvelopeStatus.DELIVERED if viewed else EnvelopeStatus.SENT, **base)


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "fieldhub" + secrets.token_hex(12)
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, filename, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        out.write(head.encode() + b"Content-Type: application/pdf\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _fields(request: Request) -> list[dict[str, Any]]:
    sig = request.signature
    fields = [
        {
            "document_index": 0,
            "api_id": "signature_1",
            "name": "Signature",
            "type": "signature",
            "x": round(sig.x),
            "y": round(LETTER_HEIGHT - sig.y - SIG_H * 0.8),
            "width": SIG_W,
            "height": SIG_H,
            "required": True,
            "signer": 0,
            "page": sig.page + 1,
        }
    ]
    if request.date is not None:
        day = request.date
        fields.append(
            {
                "document_index": 0,
                "api_id": "date_1",
                "name": "Date",
                "type": "date_signed",
                "x": round(day.x),
                "y": round(LETTER_HEIGHT - day.y - 16),
                "width": 110,
                "height": 20,
                "required": True,
                "signer": 0,
                "page": day.page + 1,
            }
        )
    return fields


async def send(client: ProviderClient, conn: Connection, request: Request) -> Sent:
    fields = [
        ("title", request.title),
        ("subject", request.subject),
        ("message", request.message),
        ("signers[0][email_address]", request.signer_email),
        ("signers[0][name]", request.signer_name),
        ("metadata[send_key]", request.send_key),
        ("form_fields_per_document", json.dumps([_fields(request)])),
    ]
    path = "/signature_request/send"
    if request.embedded:
        path = "/signature_request/create_embedded"
        fields += [("client_id", request.app_id), ("signing_redirect_url", request.return_url)]
    body, kind = _multipart(fields, [("files[0]", request.file_name, request.pdf)])
    reply = await client.post(path, content=body, headers={"Content-Type": kind}, bucket=conn.account_id or "")
    return Sent(remote_id=reply.json()["signature_request"]["signature_request_id"])


async def find(client: ProviderClient, conn: Connection, send_key: str) -> Sent | None:
    reply = await client.get(
        "/signature_request/list", params={"query": f"metadata:send_key={send_key}"}, bucket=conn.account_id or ""
    )
    found = reply.json().get("signature_requests") or []
    return Sent(remote_id=found[0]["signature_request_id"]) if found else None


async def _request(client: ProviderClient, conn: Connection, remote_id: str) -> dict[str, Any]:
    reply = await client.get(f"/signature_request/{remote_id}", bucket=conn.account_id or "")
    return reply.json()["signature_request"]


async def signing_url(
    client: ProviderClient, conn: Connection, remote_id: str, request: Request, return_url: str
) -> str:
    req = await _request(client, conn, remote_id)
    signature_id = req["signatures"][0]["signature_id"]
    reply = await client.get(f"/embedded/sign_url/{signature_id}", bucket=conn.account_id or "")
    return str(reply.json()["embedded"]["sign_url"])


async def status(client: ProviderClient, conn: Connection, remote_id: str) -> Update:
    try:
        return update_from(await _request(client, conn, remote_id))
    except ProviderError as exc:
        if exc.status == 410:  # canceled: Dropbox Sign answers "deleted"
            return Update(remote_id=remote_id, status=EnvelopeStatus.VOIDED, void_reason="Canceled at Dropbox Sign.")
        raise


async def void(client: ProviderClient, conn: Connection, remote_id: str, reason: str) -> None:
    # Dropbox Sign's cancel takes no reason; fieldhub keeps it.
    await client.post(f"/signature_request/cancel/{remote_id}", bucket=conn.account_id or "")


async def documents(client: ProviderClient, conn: Connection, remote_id: str) -> tuple[bytes, bytes]:
    reply = await client.get(
        f"/signature_request/files/{remote_id}", params={"file_type": "pdf"}, bucket=conn.account_id or ""
    )
    signed = reply.content
    pages = PdfReader(io.BytesIO(signed)).pages
    audit = PdfWriter()
    audit.add_page(pages[len(pages) - 1])
    out = io.BytesIO()
    audit.write(out)
    return signed, out.getvalue()
