"""The official dropbox-sign SDK against the Dropbox Sign emulator, unmodified but for the host; and the emulator's
callbacks as the SDK's EventCallbackHelper judges them.

The emulator is served by uvicorn on a real 127.0.0.1 port; the SDK's Configuration takes it as `host` and the
API key as `username` (HTTP Basic, as Dropbox Sign's quick starts set it).
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import dropbox_sign as ds
import httpx
import pytest
import uvicorn
from pypdf import PdfReader

from fieldhub.core.estimates.pdf import DATE_ANCHOR, SIGNATURE_ANCHOR
from fieldhub.hub.emulator import EmulatorConfig, pdfstamp
from fieldhub.providers.dropbox_sign.emulator import DEFAULT_API_KEY, DropboxSignEmulator, create_emulator

PDF = pdfstamp.certificate(
    "Estimate EST-1001", [("Sign here", [("Signature", SIGNATURE_ANCHOR), ("Date", DATE_ANCHOR)])]
)
CONFIG = EmulatorConfig(client_id="ds-client-id", hub_url="http://hub.test")


@pytest.fixture
def served() -> Iterator[tuple[DropboxSignEmulator, int, list[httpx.Request]]]:
    got: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(200, text="Hello API Event Received")

    emulator = create_emulator(CONFIG, webhook_transport=httpx.MockTransport(hub))
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
    yield emulator, port, got
    server.should_exit = True
    thread.join(timeout=10)


def _fields() -> list:
    return [
        ds.SubFormFieldsPerDocumentSignature(
            document_index=0,
            api_id="sig1",
            type="signature",
            x=60,
            y=100,
            width=200,
            height=30,
            required=True,
            signer=0,
            page=1,
        ),
    ]


def test_issue20_item4_dropbox_sign_sdk_basic_calls(served, tmp_path) -> None:
    emulator, port, got = served
    estimate = tmp_path / "Estimate EST-1001.pdf"
    estimate.write_bytes(PDF)
    configuration = ds.Configuration(username=DEFAULT_API_KEY, host=f"http://127.0.0.1:{port}/v3")
    with ds.ApiClient(configuration) as client:
        requests = ds.SignatureRequestApi(client)
        sent = requests.signature_request_send(
            ds.SignatureRequestSendRequest(
                title="Estimate EST-1001",
                subject="Please sign",
                message="Thanks!",
                signers=[
                    ds.SubSignatureRequestSigner(email_address="kj@example.com", name="Katherine Johnson", order=0)
                ],
                files=[estimate.open("rb")],
                metadata={"send_key": "est-1-v1-0"},
                form_fields_per_document=_fields(),
                test_mode=True,
            )
        ).signature_request
        assert sent.title == "Estimate EST-1001" and sent.signatures[0].status_code == "awaiting_signature"
        assert sent.metadata == {"send_key": "est-1-v1-0"}

        # The signer signs on the emulator's page (the email's link).
        link = next(m["link"] for m in emulator.inbox if m["signature_request_id"] == sent.signature_request_id)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            assert browser.get(link).status_code == 200
            browser.post(f"{link}/sign", data={"signature": "K. Johnson"})

        fetched = requests.signature_request_get(sent.signature_request_id).signature_request
        assert fetched.is_complete and fetched.signatures[0].status_code == "signed"
        data = requests.signature_request_files(sent.signature_request_id, file_type="pdf")
        data = data.read() if hasattr(data, "read") else data
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        assert "K. Johnson" in text and "Audit trail" in text

        # Embedded: create_embedded with the app's client_id, the signer's sign_url, and cancel.
        embedded = requests.signature_request_create_embedded(
            ds.SignatureRequestCreateEmbeddedRequest(
                client_id=CONFIG.client_id,
                title="Estimate EST-1002",
                signers=[ds.SubSignatureRequestSigner(email_address="kj@example.com", name="Katherine Johnson")],
                files=[estimate.open("rb")],
                form_fields_per_document=_fields(),
            )
        ).signature_request
        url = ds.EmbeddedApi(client).embedded_sign_url(embedded.signatures[0].signature_id).embedded.sign_url
        assert "/editor/embeddedSign" in url
        requests.signature_request_cancel(embedded.signature_request_id)
        with pytest.raises(ds.ApiException) as gone:
            requests.signature_request_get(embedded.signature_request_id)
        assert gone.value.status == 410 and json.loads(gone.value.body)["error"]["error_name"] == "deleted"
        # Dropbox Sign's error body for a bad key reaches the SDK too.
        bad = ds.ApiClient(ds.Configuration(username="wrong", host=f"http://127.0.0.1:{port}/v3"))
        with pytest.raises(ds.ApiException) as refused:
            ds.SignatureRequestApi(bad).signature_request_get(sent.signature_request_id)
        assert refused.value.status == 401

    # Every callback the emulator sent is valid by the SDK's own EventCallbackHelper, with the account's key.
    deadline = time.time() + 5
    while len(got) < 5 and time.time() < deadline:
        time.sleep(0.05)
    kinds = []
    for request in got:
        body = request.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        callback = ds.EventCallbackRequest.from_json(body.decode())
        assert ds.EventCallbackHelper.is_valid(DEFAULT_API_KEY, callback)
        kinds.append(callback.event.event_type)
    assert {"signature_request_sent", "signature_request_viewed", "signature_request_all_signed"} <= set(kinds)
