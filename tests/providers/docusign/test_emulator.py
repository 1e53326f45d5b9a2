"""The DocuSign emulator's envelopes: lifecycle, signing page, documents, errors, reminders, expiry and Connect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re

import httpx
import pytest
from pypdf import PdfReader

from fieldhub.core.estimates.pdf import DATE_ANCHOR, SIGNATURE_ANCHOR
from fieldhub.hub.emulator import EmulatorConfig, pdfstamp
from fieldhub.providers.docusign.emulator import USERS, DocuSignEmulator, create_emulator

CONFIG = EmulatorConfig(hub_url="http://hub.test", webhook_secret="connect-key")
PDF = pdfstamp.certificate(
    "Estimate EST-1001", [("Sign here", [("Signature", SIGNATURE_ANCHOR), ("Date", DATE_ANCHOR)])]
)


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def connect():
    """What Connect posted to the hub, answered with the statuses queued in `answers` (200 once they run out)."""
    got: list[httpx.Request] = []
    answers: list[int] = []

    def receive(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(answers.pop(0) if answers else 200, json={"ok": True})

    return got, answers, httpx.MockTransport(receive)


@pytest.fixture
def emu(connect) -> DocuSignEmulator:
    return create_emulator(CONFIG, webhook_transport=connect[2])


@pytest.fixture
async def api(emu):
    token = emu.oauth._issue(USERS[0], "signature extended", None)["access_token"]
    account = emu.account_id(USERS[0])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu),
        base_url=f"http://demo.docusign.test/restapi/v2.1/accounts/{account}",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def definition(embedded: bool = False, **extra) -> dict:
    signer = {
        "email": "kj@example.com",
        "name": "Katherine Johnson",
        "recipientId": "1",
        "routingOrder": "1",
        "tabs": {
            "signHereTabs": [{"anchorString": SIGNATURE_ANCHOR, "anchorUnits": "pixels"}],
            "dateSignedTabs": [{"anchorString": DATE_ANCHOR}],
        },
    }
    if embedded:
        signer["clientUserId"] = "customer-7"
    return {
        "emailSubject": "Estimate EST-1001 - please sign",
        "emailBlurb": "Thanks for having us out.",
        "status": "sent",
        "documents": [
            {
                "documentBase64": base64.b64encode(PDF).decode(),
                "name": "Estimate EST-1001",
                "fileExtension": "pdf",
                "documentId": "1",
            }
        ],
        "recipients": {"signers": [signer]},
        "eventNotification": {
            "url": "http://hub.test/webhooks/docusign",
            "includeHMAC": "true",
            "requireAcknowledgment": "true",
            "eventData": {"format": "json", "version": "restv2.1", "includeData": ["recipients"]},
            "events": [
                "envelope-sent",
                "envelope-delivered",
                "envelope-completed",
                "envelope-declined",
                "envelope-voided",
            ],
        },
        "transactionId": "est-1-v1",
        **extra,
    }


async def test_issue20_item2_email_signing_lifecycle_and_signed_documents(emu, api, connect) -> None:
    got, _, _ = connect
    r = await api.post("/envelopes", json=definition())
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["status"] == "sent" and set(summary) == {"envelopeId", "uri", "statusDateTime", "status"}
    envelope_id = summary["envelopeId"]
    # The signer was emailed a link; opening it is "delivered", signing it "completed".
    [mail] = [m for m in emu.inbox if m["envelopeId"] == envelope_id]
    assert mail["to"] == "kj@example.com" and mail["subject"].startswith("Please DocuSign")
    signer = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu), base_url="http://demo.docusign.test", follow_redirects=True
    )
    page = await signer.get(mail["link"])
    assert page.status_code == 200 and "Adopt your signature" in page.text
    assert (await api.get(f"/envelopes/{envelope_id}")).json()["status"] == "delivered"
    ti = re.search(r'name=ti value="([^"]+)"', page.text).group(1)
    done = await signer.post("/Signing/sign", data={"ti": ti, "signature": "Katherine J. Johnson"})
    assert done.status_code == 200 and "done signing" in done.text
    env = (await api.get(f"/envelopes/{envelope_id}", params={"include": "recipients"})).json()
    assert env["status"] == "completed" and env["completedDateTime"] and env["deliveredDateTime"]
    assert env["recipients"]["signers"][0]["status"] == "completed"
    combined = await api.get(f"/envelopes/{envelope_id}/documents/combined", params={"certificate": "true"})
    assert combined.headers["content-type"] == "application/pdf"
    text = pdf_text(combined.content)
    assert "Katherine J. Johnson" in text and "Certificate Of Completion" in text and envelope_id.upper() in text
    cert = await api.get(f"/envelopes/{envelope_id}/documents/certificate")
    assert "Certificate Of Completion" in pdf_text(cert.content)
    # Connect: each event HMAC-signed over the raw body with the Connect key.
    await emu.connect.idle()
    events = [json.loads(r.content)["event"] for r in got]
    assert events == ["envelope-sent", "envelope-delivered", "envelope-completed"]
    for request in got:
        digest = base64.b64encode(hmac.new(b"connect-key", request.content, hashlib.sha256).digest()).decode()
        assert request.headers["x-docusign-signature-1"] == digest
    last = json.loads(got[-1].content)
    assert last["data"]["envelopeId"] == envelope_id and last["data"]["envelopeSummary"]["status"] == "completed"


async def test_issue20_item2_embedded_signing_decline_and_void(emu, api) -> None:
    envelope_id = (await api.post("/envelopes", json=definition(embedded=True))).json()["envelopeId"]
    assert not [m for m in emu.inbox if m["envelopeId"] == envelope_id]  # an embedded signer gets no email
    wrong = await api.post(
        f"/envelopes/{envelope_id}/views/recipient",
        json={
            "returnUrl": "http://hub.test/back",
            "authenticationMethod": "none",
            "email": "kj@example.com",
            "userName": "Someone Else",
            "clientUserId": "customer-7",
        },
    )
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == "UNKNOWN_ENVELOPE_RECIPIENT"
    view = await api.post(
        f"/envelopes/{envelope_id}/views/recipient",
        json={
            "returnUrl": "http://hub.test/back",
            "authenticationMethod": "none",
            "email": "kj@example.com",
            "userName": "Katherine Johnson",
            "clientUserId": "customer-7",
            "recipientId": "1",
        },
    )
    assert view.status_code == 201
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu))
    opened = await browser.get(view.json()["url"])
    assert opened.status_code == 302
    page = await browser.get(opened.headers["location"])
    ti = re.search(r'name=ti value="([^"]+)"', page.text).group(1)
    back = await browser.post(
        str(page.url).split("/Signing/")[0] + "/Signing/decline", data={"ti": ti, "reason": "Too expensive"}
    )
    assert back.status_code == 302 and back.headers["location"] == "http://hub.test/back?event=decline"
    assert (await browser.get(view.json()["url"])).status_code == 410  # a view URL is good once
    env = (await api.get(f"/envelopes/{envelope_id}", params={"include": "recipients"})).json()
    assert env["status"] == "declined" and env["recipients"]["signers"][0]["declinedReason"] == "Too expensive"
    # A declined envelope can't be voided; a sent one can, with a reason.
    r = await api.put(f"/envelopes/{envelope_id}", json={"status": "voided", "voidedReason": "x"})
    assert r.status_code == 400 and r.json()["errorCode"] == "ENVELOPE_CANNOT_VOID_INVALID_STATE"
    other = (await api.post("/envelopes", json=definition())).json()["envelopeId"]
    r = await api.put(f"/envelopes/{other}", json={"status": "voided", "voidedReason": "Estimate changed"})
    assert r.status_code == 200 and r.json() == {"envelopeId": other}
    env = (await api.get(f"/envelopes/{other}")).json()
    assert env["status"] == "voided" and env["voidedReason"] == "Estimate changed"


async def test_issue20_item2_errors_lookup_by_transaction_reminders_and_expiry(emu, api) -> None:
    r = await api.post("/envelopes", json=definition(documents=[]))
    assert r.status_code == 400 and r.json()["errorCode"] == "ENVELOPE_IS_INCOMPLETE"
    bad = definition()
    bad["recipients"]["signers"][0]["tabs"]["signHereTabs"][0]["anchorString"] = "/nowhere/"
    r = await api.post("/envelopes", json=bad)
    assert r.json()["errorCode"] == "ANCHOR_TAB_STRING_NOT_FOUND"
    r = await api.get("/envelopes/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 400 and r.json()["errorCode"] == "ENVELOPE_DOES_NOT_EXIST"
    r = await api.get("/envelopes")
    assert r.json()["errorCode"] == "INVALID_REQUEST_PARAMETER"
    assert (await api.get("/envelopes", headers={"Authorization": "Bearer nope"})).status_code == 401
    # transactionId: did a create whose reply was lost go through?
    reminded = definition(
        transactionId="est-9-v2",
        notification={
            "useAccountDefaults": "false",
            "reminders": {"reminderEnabled": "true", "reminderDelay": "2", "reminderFrequency": "2"},
            "expirations": {"expireEnabled": "true", "expireAfter": "5", "expireWarn": "1"},
        },
    )
    envelope_id = (await api.post("/envelopes", json=reminded)).json()["envelopeId"]
    found = (await api.get("/envelopes", params={"transaction_ids": "est-9-v2"})).json()
    assert [e["envelopeId"] for e in found["envelopes"]] == [envelope_id] and found["resultSetSize"] == "1"
    # Days pass on the emulator's clock (the 8-hour token with them): its tick sends reminders, then expires.
    emu.clock.advance(2 * 86400 + 1)
    assert (await api.post("http://demo.docusign.test/_emulator/tick")).json()["ran"] == 1
    assert [m["subject"] for m in emu.inbox if m["envelopeId"] == envelope_id][-1].startswith("Reminder:")
    emu.clock.advance(3 * 86400)
    await api.post("http://demo.docusign.test/_emulator/tick")
    token = emu.oauth._issue(USERS[0], "signature", None)["access_token"]
    env = (await api.get(f"/envelopes/{envelope_id}", headers={"Authorization": f"Bearer {token}"})).json()
    assert env["status"] == "voided" and env["voidedReason"] == "Envelope has expired."


async def test_issue20_item2_connect_retries_until_acknowledged(emu, api, connect) -> None:
    got, answers, _ = connect
    answers += [500, 503]
    await api.post("/envelopes", json=definition())
    await emu.connect.idle()
    [delivery] = emu.connect.deliveries
    assert delivery.status == "pending" and len(got) == 1
    emu.clock.advance(61)
    await emu.connect.flush()
    emu.clock.advance(301)
    await emu.connect.flush()
    assert delivery.status == "delivered" and [a.status for a in delivery.attempts] == [500, 503, 200]
    assert got[0].content == got[-1].content  # the same signed body each time
