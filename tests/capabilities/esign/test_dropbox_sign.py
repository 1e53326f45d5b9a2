"""E-signatures with Dropbox Sign, through the same capability: send, sign, decline, embedded, one request per
send, and callbacks checked by event_hash and answered exactly "Hello API Event Received"."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json

from pypdf import PdfReader
from sqlalchemy import func, select

from fieldhub.capabilities.esign.models import EnvelopeStatus, SignatureEnvelope
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.hub.webhooks.models import WebhookInbox
from tests.capabilities.esign.conftest import follow_signing, submit_form

KEY = "demo-dropbox_sign-api-key"  # the hub's API key setting in test mode: it signs the callbacks


async def _row(session) -> SignatureEnvelope:
    session.expire_all()
    return await session.scalar(select(SignatureEnvelope).order_by(SignatureEnvelope.id.desc()))


async def _estimate_status(session, estimate_id: int) -> str:
    session.expire_all()
    return (await session.get(Estimate, estimate_id)).status


def _link(emu, remote_id: str) -> str:
    [mail] = [m for m in emu.inbox if m["signature_request_id"] == remote_id]
    return f"/emulators/dropbox_sign{mail['link']}"


async def test_issue20_item4_dropbox_sign_send_sign_approve(owner, session, dropbox_sign) -> None:
    emu, est_id = dropbox_sign.emulator, dropbox_sign.estimate_id
    r = await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email", "message": "Thanks!"})
    assert "msg=esign_sent" in r.headers["location"]
    row = await _row(session)
    req = emu.signature_requests[row.remote_id]
    assert req["metadata"] == {"send_key": row.send_key} and req["message"] == "Thanks!"
    assert req["fields"][0]["type"] == "signature"
    browser, page = await follow_signing(dropbox_sign.app, _link(emu, row.remote_id))
    done = await submit_form(browser, page, "signature", "Katherine Johnson")
    assert "signed" in done.text
    await emu.callbacks.idle()
    row = await _row(session)
    assert row.status == EnvelopeStatus.SIGNED and row.delivered_at and row.signed_at
    row_id = row.id
    assert await _estimate_status(session, est_id) == EstimateStatus.APPROVED
    pdf = await owner.get(f"/esign/envelopes/{row_id}/signed.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Katherine Johnson" in text and "Audit trail" in text
    # Every callback was answered with exactly the words Dropbox Sign needs, so none is pending a retry.
    counts = emu.callbacks.counts()
    assert counts["pending"] == 0 and counts["failed"] == 0 and counts["delivered"] >= 4


async def test_issue20_item4_dropbox_sign_decline_and_embedded(owner, session, dropbox_sign, app) -> None:
    emu, est_id = dropbox_sign.emulator, dropbox_sign.estimate_id
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    row = await _row(session)
    browser, page = await follow_signing(app, _link(emu, row.remote_id))
    await submit_form(browser, page, "reason", "Too pricey")
    await emu.callbacks.idle()
    row = await _row(session)
    assert row.status == EnvelopeStatus.DECLINED and row.decline_reason == "Too pricey"
    assert await _estimate_status(session, est_id) == EstimateStatus.DECLINED

    # Embedded on a second estimate: create_embedded with our client_id, then the signer's sign_url.
    from tests.capabilities.esign.conftest import new_estimate

    second = (await new_estimate(session, dropbox_sign.tenant_id, email="pat@example.com")).id
    r = await owner.submit(f"/estimates/{second}/esign/send", {"mode": "embedded"})
    assert "/editor/embeddedSign" in r.headers["location"]
    row = await _row(session)
    row_id = row.id
    assert emu.signature_requests[row.remote_id]["embedded"] and not [
        m for m in emu.inbox if m["to"] == "pat@example.com"
    ]
    opened = await owner.get(r.headers["location"].replace("http://testserver", ""), follow_redirects=True)
    back = await submit_form(owner, opened, "signature", "Pat Customer")
    assert back.status_code == 302 and f"/esign/envelopes/{row_id}/back" in back.headers["location"]
    await owner.get(back.headers["location"].replace("http://testserver", ""))
    assert (await _row(session)).status == EnvelopeStatus.SIGNED
    assert await _estimate_status(session, second) == EstimateStatus.APPROVED


async def test_issue20_item4_dropbox_sign_one_request_per_send(owner, session, dropbox_sign, make_client) -> None:
    emu, est_id = dropbox_sign.emulator, dropbox_sign.estimate_id
    async with make_client() as second:
        await second.login(dropbox_sign.emails["admin"])
        await asyncio.gather(
            owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"}),
            second.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"}),
        )
    assert await session.scalar(select(func.count()).select_from(SignatureEnvelope)) == 1
    assert len(emu.signature_requests) == 1


async def test_issue20_item4_forged_and_replayed_callbacks_write_nothing(owner, session, dropbox_sign, client) -> None:
    emu, est_id = dropbox_sign.emulator, dropbox_sign.estimate_id
    emu.callbacks.paused = True
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    [delivery] = emu.callbacks.deliveries
    body, headers = delivery.outgoing.body, delivery.outgoing.headers
    before = await session.scalar(select(func.count()).select_from(WebhookInbox))
    # Forged: a hash made with another key, and a genuine hash over a changed event type: 401, nothing stored.
    payload = json.loads(body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
    event = payload["event"]
    wrong = hmac.new(b"not-the-key", (event["event_time"] + "signature_request_all_signed").encode(), hashlib.sha256)
    for kind, digest in (
        ("signature_request_all_signed", wrong.hexdigest()),
        ("signature_request_all_signed", event["event_hash"]),
    ):
        forged = {**payload, "event": {**event, "event_type": kind, "event_hash": digest}}
        forged["signature_request"] = {**payload["signature_request"], "is_complete": True}
        r = await client.post("/webhooks/dropbox_sign", json=forged)
        assert r.status_code == 401
    assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == before
    # The genuine callback is answered word for word; its replay too, and stored once.
    r = await client.post("/webhooks/dropbox_sign", content=body, headers=headers)
    assert r.status_code == 200 and r.text == "Hello API Event Received"
    again = await client.post("/webhooks/dropbox_sign", content=body, headers=headers)
    assert again.text == "Hello API Event Received"
    assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == before + 1
    assert (await _row(session)).status == EnvelopeStatus.SENT
    # The SDK's own fixture key and vector: the check is Dropbox Sign's.
    vector = hmac.new(
        b"324e3b0840f065eb51f3fd63231d0d33daa35d4ed10d27718839e81737065782",
        b"1669926463account_confirmed",
        hashlib.sha256,
    ).hexdigest()
    assert vector == "ff8b03439122f9160500c3fb855bdee5a9ccba5fff27d3b258745d8f3074832f"
