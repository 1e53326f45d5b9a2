"""E-signatures on estimates, end to end against the DocuSign emulator: send, sign, decline, void, edit, poll."""

from __future__ import annotations

import asyncio
import io
import json

from pypdf import PdfReader
from sqlalchemy import func, select

from fieldhub.capabilities.esign import tasks
from fieldhub.capabilities.esign.models import EnvelopeStatus, SignatureEnvelope
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import EstimateStatus
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.webhooks.models import WebhookInbox
from tests.capabilities.esign.conftest import follow_signing, form_token


async def _row(session) -> SignatureEnvelope:
    session.expire_all()
    return await session.scalar(select(SignatureEnvelope).order_by(SignatureEnvelope.id.desc()))


def _text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


async def test_issue20_item3_send_sign_approve_and_download(owner, session, docusign) -> None:
    est, emu, est_id = docusign.estimate, docusign.emulator, docusign.estimate_id
    page = await owner.get(f"/estimates/{est_id}")
    assert "Send for signature" in page.text and "Sign now on this tablet" in page.text
    r = await owner.submit(
        f"/estimates/{est_id}/esign/send",
        {"connection_id": str(docusign.conn_id), "message": "Thanks!", "mode": "email"},
    )
    assert r.status_code == 303 and "msg=esign_sent" in r.headers["location"], r.headers
    row = await _row(session)
    assert row.status == EnvelopeStatus.SENT and row.remote_id and row.send_key == f"est-{est_id}-0"
    await session.refresh(est)
    assert est.status == EstimateStatus.SENT
    envelope = emu.envelopes[row.remote_id]
    assert envelope["emailBlurb"] == "Thanks!" and envelope["transactionId"] == row.send_key
    [mail] = [m for m in emu.inbox if m["envelopeId"] == row.remote_id]
    assert mail["to"] == "kj@example.com"

    browser, signing = await follow_signing(docusign.app, f"/emulators/docusign{mail['link']}")
    done = await browser.post(
        "/emulators/docusign/Signing/sign", data={"ti": form_token(signing), "signature": "Katherine Johnson"}
    )
    assert "done signing" in done.text
    await emu.connect.idle()
    row = await _row(session)
    assert row.status == EnvelopeStatus.SIGNED and row.signed_at and row.delivered_at and row.sent_at
    await session.refresh(est)
    assert est.status == EstimateStatus.APPROVED
    view = await owner.get(f"/estimates/{est_id}")
    assert 'data-esign-status="signed"' in view.text and "Download signed PDF" in view.text
    signed = await owner.get(f"/esign/envelopes/{row.id}/signed.pdf")
    assert signed.status_code == 200 and "Katherine Johnson" in _text(signed.content)
    certificate = await owner.get(f"/esign/envelopes/{row.id}/certificate.pdf")
    assert "Certificate Of Completion" in _text(certificate.content)
    note = await session.scalar(select(Notification).where(Notification.kind == "esign.signed"))
    assert note is not None and docusign.number in note.title
    # Connect's deliveries were each answered once; every message was stored once in the inbox.
    assert emu.connect.counts()["delivered"] == 3
    assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == 3


async def test_issue20_item3_decline_with_reason(owner, session, docusign) -> None:
    est, emu, est_id = docusign.estimate, docusign.emulator, docusign.estimate_id
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    row = await _row(session)
    [mail] = [m for m in emu.inbox if m["envelopeId"] == row.remote_id]
    browser, signing = await follow_signing(docusign.app, f"/emulators/docusign{mail['link']}")
    await browser.post("/emulators/docusign/Signing/decline", data={"ti": form_token(signing), "reason": "Too pricey"})
    await emu.connect.idle()
    row = await _row(session)
    assert row.status == EnvelopeStatus.DECLINED and row.decline_reason == "Too pricey" and row.declined_at
    await session.refresh(est)
    assert est.status == EstimateStatus.DECLINED
    view = await owner.get(f"/estimates/{est_id}")
    assert "Too pricey" in view.text and 'data-esign-status="declined"' in view.text


async def test_issue20_item3_embedded_signing_comes_back_signed(owner, session, docusign) -> None:
    est, emu, est_id = docusign.estimate, docusign.emulator, docusign.estimate_id
    r = await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "embedded"})
    assert r.status_code == 303 and "/Signing/MTRedeem/v1/" in r.headers["location"]
    row = await _row(session)
    assert row.embedded and not [m for m in emu.inbox if m["envelopeId"] == row.remote_id]
    # The technician's tablet: the same browser goes to DocuSign and back to fieldhub.
    opened = await owner.get(r.headers["location"].replace("http://testserver", ""), follow_redirects=True)
    signed = await owner.post(
        "/emulators/docusign/Signing/sign", data={"ti": form_token(opened), "signature": "Katherine Johnson"}
    )
    assert (
        signed.status_code == 302
        and f"/esign/envelopes/{row.id}/back?event=signing_complete" in signed.headers["location"]
    )
    back = await owner.get(signed.headers["location"].replace("http://testserver", ""))
    assert back.status_code == 303 and "msg=esign_signing_complete" in back.headers["location"]
    row = await _row(session)
    assert row.status == EnvelopeStatus.SIGNED
    await session.refresh(est)
    assert est.status == EstimateStatus.APPROVED


async def test_issue20_item3_concurrent_double_send_makes_one_envelope(
    owner, session, docusign, make_client, biz
) -> None:
    emu, est_id = docusign.emulator, docusign.estimate_id
    async with make_client() as second:
        await second.login(docusign.emails["admin"])
        replies = await asyncio.gather(
            owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"}),
            second.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"}),
        )
    assert all(r.status_code == 303 for r in replies)
    assert await session.scalar(select(func.count()).select_from(SignatureEnvelope)) == 1
    assert len(emu.envelopes) == 1
    # And sending again while it is open answers with the same envelope.
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    assert len(emu.envelopes) == 1


async def test_issue20_item3_forged_and_replayed_connect_messages_write_nothing(
    owner, session, docusign, client
) -> None:
    emu, est_id = docusign.emulator, docusign.estimate_id
    emu.connect.paused = True
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    [delivery] = emu.connect.deliveries
    body, headers = delivery.outgoing.body, delivery.outgoing.headers
    before = await session.scalar(select(func.count()).select_from(WebhookInbox))
    # A body changed after signing, a signature made with another key, no signature at all: 401, nothing stored.
    forged = json.loads(body)
    forged["data"]["envelopeSummary"]["status"] = "completed"
    for content, sig in (
        (json.dumps(forged).encode(), headers["X-DocuSign-Signature-1"]),
        (body, "bm90IHRoZSBrZXk="),
        (body, None),
    ):
        sent = {"Content-Type": "application/json"} | ({"X-DocuSign-Signature-1": sig} if sig else {})
        r = await client.post("/webhooks/docusign", content=content, headers=sent)
        assert r.status_code == 401
    assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == before
    # The genuine one, then the same bytes replayed: stored once, the envelope unchanged by the replay.
    r = await client.post("/webhooks/docusign", content=body, headers=headers)
    assert r.status_code == 200 and r.json() == {"received": True}
    again = await client.post("/webhooks/docusign", content=body, headers=headers)
    assert again.json() == {"received": True, "duplicate": True}
    assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == before + 1
    assert (await _row(session)).status == EnvelopeStatus.SENT


async def test_issue20_item3_edit_after_send_voids_and_asks_to_resend_void_and_poll(
    owner, session, docusign, app
) -> None:
    est, emu, est_id = docusign.estimate, docusign.emulator, docusign.estimate_id
    env = env_for(app)
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    first = await _row(session)
    await estimates.update_estimate(session, docusign.tenant_id, est_id, {"memo": "Now with a new valve."})
    await session.commit()
    assert (await _row(session)).void_requested
    view = await owner.get(f"/estimates/{est_id}")
    assert "data-esign-changed" in view.text and "Send for signature" in view.text
    assert await tasks.run(env) == 1
    first = await _row(session)
    assert first.status == EnvelopeStatus.VOIDED and first.void_reason.startswith("The estimate was changed")
    assert emu.envelopes[first.remote_id]["status"] == "voided"
    # Sent again: a new envelope under a new key; voided from fieldhub.
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    second = await _row(session)
    assert second.id != first.id and second.send_key.endswith("-1") and second.status == EnvelopeStatus.SENT
    r = await owner.submit(f"/esign/envelopes/{second.id}/void")
    assert "msg=esign_voided" in r.headers["location"]
    assert emu.envelopes[(await _row(session)).remote_id]["voidedReason"].startswith("Voided by")
    # The poll: webhooks lost (paused), the envelope signed at DocuSign; a quiet envelope is asked about.
    await owner.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
    third = await _row(session)
    emu.connect.paused = True
    [mail] = [m for m in emu.inbox if m["envelopeId"] == third.remote_id]
    browser, signing = await follow_signing(docusign.app, f"/emulators/docusign{mail['link']}")
    await browser.post("/emulators/docusign/Signing/sign", data={"ti": form_token(signing), "signature": "KJ"})
    assert (await _row(session)).status == EnvelopeStatus.SENT
    env.settings.esign_poll_seconds = 0
    await tasks.run(env)
    assert (await _row(session)).status == EnvelopeStatus.SIGNED
    await session.refresh(est)
    assert est.status == EstimateStatus.APPROVED


async def test_issue20_item3_who_may_send(make_client, session, docusign, biz) -> None:
    est_id = docusign.estimate_id
    async with make_client() as dispatcher:
        await dispatcher.login(docusign.emails["dispatcher"])
        r = await dispatcher.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
        assert "esign_error=" in r.headers["location"]
    async with make_client() as tech:
        await tech.login(docusign.emails["tech"])
        page = await tech.get(f"/estimates/{est_id}")
        assert "Send for signature" not in page.text  # not on a job of this customer
        from datetime import UTC, datetime, timedelta

        from fieldhub.core.jobs.service import create_job

        start = datetime.now(UTC) + timedelta(days=1)
        await create_job(
            session,
            docusign.tenant_id,
            {
                "customer_id": docusign.customer_id,
                "title": "Water heater",
                "scheduled_start": start,
                "scheduled_end": start + timedelta(hours=2),
                "technician_ids": [docusign.tech_id],
            },
        )
        await session.commit()
        r = await tech.submit(f"/estimates/{est_id}/esign/send", {"mode": "email"})
        assert "msg=esign_sent" in r.headers["location"], r.headers
