"""The demo's emulator request log (GET /emulators/<key>/_emulator/requests) shows no live credential to whoever can
reach the port: tokens, refresh tokens, authorization codes, client secrets and keys read "[redacted]" in headers,
query, body and reply alike (issue 14 item 10)."""

from __future__ import annotations

import base64

from fieldhub.hub.emulator.core import redact_text
from tests.hub.sync.conftest import QBOSetup
from tests.hub.sync.test_engine import make_invoice


async def test_issue14_item10_emulator_request_log_shows_no_live_token_or_secret(
    qbo: QBOSetup, owner, session, biz
) -> None:
    await make_invoice(session, biz)
    await session.commit()
    await qbo.sync()
    emulator = qbo.emulator
    secrets = [token for token in emulator.oauth.tokens] + [emulator.oauth.rules.client_secret]
    secrets += [base64.b64encode(f"{emulator.oauth.rules.client_id}:{s}".encode()).decode() for s in secrets[-1:]]
    raw = repr(list(emulator.requests))
    assert any(s in raw for s in secrets), "the flow under test carried credentials"
    shown = await owner.get("/emulators/quickbooks/_emulator/requests")
    assert shown.status_code == 200 and len(shown.json()) >= 3
    leaked = [s[:6] for s in secrets if s in shown.text]
    assert not leaked
    assert "[redacted]" in shown.text
    # What is no credential stays readable: QuickBooks' SyncToken, the paths, the token type.
    assert '"SyncToken"' in shown.text.replace('\\"', '"') and "/v3/company/" in shown.text


def test_issue14_item10_redaction_covers_form_json_and_query_shapes() -> None:
    assert redact_text("grant_type=authorization_code&code=c1&code_verifier=v&client_secret=s") == (
        "grant_type=authorization_code&code=[redacted]&code_verifier=[redacted]&client_secret=[redacted]"
    )
    assert redact_text('{"a": [{"refresh_token": "r", "nextPageToken": "p", "id_token": "i"}]}') == (
        '{"a": [{"refresh_token": "[redacted]", "nextPageToken": "p", "id_token": "[redacted]"}]}'
    )
    assert redact_text("key=AIza&url=https%3A%2F%2Fexample.com") == "key=[redacted]&url=https%3A%2F%2Fexample.com"
    assert redact_text("plain words = no form") == "plain words = no form"  # not JSON, not a form: as it was
    assert redact_text("[" * 100_000) == "[redacted]"  # too deep to walk: not shown
