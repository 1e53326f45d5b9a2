"""The official docusign-esign SDK against the DocuSign emulator, unmodified but for the host.

The emulator is served by uvicorn on a real 127.0.0.1 port and the SDK's ApiClient is given that port as its
base path (`{base_uri}/restapi`, which a real integration reads from /oauth/userinfo). The access token is one
the emulator's OAuth server issued: the authorization-code exchange is the hub's, tested with the connect flow.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from docusign_esign import (
    ApiClient,
    ApiException,
    DateSigned,
    Document,
    Envelope,
    EnvelopeDefinition,
    EnvelopesApi,
    Recipients,
    RecipientViewRequest,
    Signer,
    SignHere,
    Tabs,
)
from pypdf import PdfReader

from fieldhub.core.estimates.pdf import DATE_ANCHOR, SIGNATURE_ANCHOR
from fieldhub.hub.emulator import EmulatorConfig, pdfstamp
from fieldhub.providers.docusign.emulator import USERS, DocuSignEmulator, create_emulator

PDF = pdfstamp.certificate(
    "Estimate EST-1001", [("Sign here", [("Signature", SIGNATURE_ANCHOR), ("Date", DATE_ANCHOR)])]
)


@pytest.fixture
def served() -> Iterator[tuple[DocuSignEmulator, int]]:
    emulator = create_emulator(EmulatorConfig(deliver_webhooks=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield emulator, port
    server.should_exit = True
    thread.join(timeout=10)


def test_issue20_item2_docusign_esign_sdk_basic_calls(served) -> None:
    emulator, port = served
    token = emulator.oauth._issue(USERS[0], "signature extended", None)["access_token"]
    account_id = emulator.account_id(USERS[0])
    client = ApiClient()
    client.host = f"http://127.0.0.1:{port}/restapi"  # DocuSign's quick starts: api_client.host = base_path
    client.set_default_header("Authorization", f"Bearer {token}")
    envelopes = EnvelopesApi(client)

    signer = Signer(
        email="kj@example.com",
        name="Katherine Johnson",
        recipient_id="1",
        routing_order="1",
        client_user_id="customer-7",
        tabs=Tabs(
            sign_here_tabs=[SignHere(anchor_string=SIGNATURE_ANCHOR, anchor_units="pixels")],
            date_signed_tabs=[DateSigned(anchor_string=DATE_ANCHOR)],
        ),
    )
    definition = EnvelopeDefinition(
        email_subject="Estimate EST-1001 - please sign",
        documents=[
            Document(
                document_base64=base64.b64encode(PDF).decode(),
                name="Estimate EST-1001",
                file_extension="pdf",
                document_id="1",
            )
        ],
        recipients=Recipients(signers=[signer]),
        status="sent",
        transaction_id="est-1-v1",
    )
    summary = envelopes.create_envelope(account_id, envelope_definition=definition)
    assert summary.status == "sent" and summary.envelope_id

    found = envelopes.list_status_changes(account_id, transaction_ids="est-1-v1")
    assert [e.envelope_id for e in found.envelopes] == [summary.envelope_id]

    view = envelopes.create_recipient_view(
        account_id,
        summary.envelope_id,
        recipient_view_request=RecipientViewRequest(
            return_url="http://hub.test/back",
            authentication_method="none",
            email="kj@example.com",
            user_name="Katherine Johnson",
            client_user_id="customer-7",
            recipient_id="1",
        ),
    )
    # The signer's browser: open the view, type a name, Sign.
    with httpx.Client(follow_redirects=True) as browser:
        page = browser.get(view.url)
        ti = page.text.split('name=ti value="')[1].split('"')[0]
        back = browser.post(
            f"http://127.0.0.1:{port}/Signing/sign", data={"ti": ti, "signature": "K. Johnson"}, follow_redirects=False
        )
        assert back.headers["location"] == "http://hub.test/back?event=signing_complete"

    envelope = envelopes.get_envelope(account_id, summary.envelope_id, include="recipients")
    assert envelope.status == "completed" and envelope.completed_date_time
    assert envelope.recipients.signers[0].status == "completed"
    # docusign-esign 6 hands the file back as its bytes (older releases wrote a temporary file).
    data = envelopes.get_document(account_id, "combined", summary.envelope_id, certificate="true")
    data = data.encode("latin-1") if isinstance(data, str) else data
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "K. Johnson" in text and "Certificate Of Completion" in text

    # Void needs a sent envelope: a second one, voided through the SDK's update.
    second = envelopes.create_envelope(account_id, envelope_definition=definition)
    envelopes.update(account_id, second.envelope_id, envelope=Envelope(status="voided", voided_reason="Changed"))
    assert envelopes.get_envelope(account_id, second.envelope_id).status == "voided"
    # DocuSign's error body reaches the SDK's ApiException.
    with pytest.raises(ApiException) as raised:
        envelopes.update(account_id, summary.envelope_id, envelope=Envelope(status="voided", voided_reason="x"))
    assert raised.value.status == 400 and b"ENVELOPE_CANNOT_VOID_INVALID_STATE" in raised.value.body
