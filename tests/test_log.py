"""The log redactor: secret fields, registered secret values anywhere, headers objects, inline credentials."""

from __future__ import annotations

from decimal import Decimal

import httpx

from fieldhub import log
from fieldhub.log import REDACTED, redact, register_secret, scrub_text


def run(**event):
    return redact(None, "info", {"event": "test.event", **event})


def test_secret_named_fields_are_redacted() -> None:
    out = run(password="hunter2", access_token="x" * 20, client_secret="s", refresh_count=3, status=200)
    assert out["password"] == out["access_token"] == out["client_secret"] == REDACTED
    assert out["refresh_count"] == 3 and out["status"] == 200


def test_registered_values_are_redacted_anywhere() -> None:
    register_secret("registered-secret-value-1")
    out = run(
        note="sent registered-secret-value-1 to the provider",
        nested={"a": ["x", ("registered-secret-value-1",)]},
        raw=b"body registered-secret-value-1",
        err=ValueError("bad registered-secret-value-1"),
    )
    dumped = repr(out)
    assert "registered-secret-value-1" not in dumped
    assert out["nested"]["a"][1] == (REDACTED,)
    assert out["err"] == f"ValueError: bad {REDACTED}"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert scrub_text("abc def") == "abc def"


def test_a_secret_containing_another_is_removed_whole() -> None:
    register_secret("inner-secret-1")
    register_secret("outer-inner-secret-1-tail")
    assert scrub_text("x outer-inner-secret-1-tail y") == f"x {REDACTED} y"


def test_header_mappings_of_any_type_are_redacted() -> None:
    headers = httpx.Headers({"Authorization": "Bearer abcdefgh12345678", "X-Request-Id": "r1"})
    out = run(headers=headers)
    assert out["headers"]["authorization"] == REDACTED
    assert out["headers"]["x-request-id"] == "r1"


def test_inline_bearer_and_basic_credentials_are_redacted() -> None:
    text = "request failed: Authorization: Bearer eyJhbGciOi.J9xyz_-abc and Basic dXNlcjpwYXNzd29yZA=="
    scrubbed = scrub_text(text)
    assert "eyJhbGciOi" not in scrubbed and "dXNlcjpw" not in scrubbed
    assert f"Bearer {REDACTED}" in scrubbed and f"Basic {REDACTED}" in scrubbed
    assert scrub_text("basic plan") == "basic plan"


def test_the_registry_is_bounded_and_keeps_the_newest(monkeypatch) -> None:
    monkeypatch.setattr(log, "MAX_REGISTERED", 3)
    # A private registry for this test, so other tests' secrets aren't evicted from the real one.
    monkeypatch.setattr(log, "_registered", {})
    monkeypatch.setattr(log, "_pattern", None)
    for i in range(5):
        register_secret(f"rotating-token-{i:04d}")
    assert scrub_text("rotating-token-0004") == REDACTED
    assert scrub_text("rotating-token-0000") == "rotating-token-0000"
    assert len(log._registered) <= 3


def test_history_bodies_are_scrubbed_as_json_with_exact_amounts() -> None:
    """history_body scrubs the body's JSON text: a secret is matched as JSON writes it, escapes and all."""
    import json

    from fieldhub.hub.sync.models import history_body

    quoted = 'quote"and\\backslash-secret'
    register_secret(quoted)
    register_secret("registered-secret-in-body-2")
    register_secret("clé-secrète-non-ascii")
    body = {
        "Line": [{"Amount": Decimal("12.50"), "Description": f"pay with {quoted} now"}],
        "Note": "registered-secret-in-body-2",
        "registered-secret-in-body-2": 1,
        "Memo": "clé-secrète-non-ascii and Authorization: Bearer eyJhbGciOi.J9xyz_-abc",
        "Count": 3,
        "Empty": None,
    }
    text = history_body(body)
    assert text is not None
    out = json.loads(text)
    assert quoted not in text and "registered-secret-in-body-2" not in text
    assert "secrète" not in text and "eyJhbGciOi" not in text
    assert out["Line"][0] == {"Amount": "12.50", "Description": f"pay with {REDACTED} now"}
    assert out["Note"] == REDACTED and out[REDACTED] == 1
    assert out["Memo"] == f"{REDACTED} and Authorization: Bearer {REDACTED}"
    assert out["Count"] == 3 and out["Empty"] is None
    assert history_body(None) is None
    assert body["Note"] == "registered-secret-in-body-2"  # the caller's body is left as it was
