"""The vault: sealed secrets round-trip, are bound to their row and field, rotate, and bad keys are refused."""

from __future__ import annotations

import base64
import os
import stat

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from fieldhub.hub import vault as vault_mod
from fieldhub.hub.vault import (
    KEYS_SETTING,
    CredentialError,
    DecryptError,
    Vault,
    ensure_demo_key,
    generate_key,
    parse_key_ring,
    validate_credential,
)
from fieldhub.log import redact
from fieldhub.settings import Settings

KEY_A = generate_key("a")
KEY_B = generate_key("b")
WHERE = {"tenant_id": 7, "owner_id": 42, "field": "refresh_token"}


def ring(*entries: str) -> Vault:
    return Vault(parse_key_ring(",".join(entries)))


def test_round_trip_and_format() -> None:
    v = ring(KEY_A)
    sealed = v.encrypt("rt-secret-value-123", **WHERE)
    assert sealed.startswith("v1.a.")
    assert "rt-secret-value-123" not in sealed
    assert v.decrypt(sealed, **WHERE) == "rt-secret-value-123"


def test_fresh_nonce_every_write() -> None:
    v = ring(KEY_A)
    sealed = {v.encrypt("same plaintext", **WHERE) for _ in range(50)}
    assert len(sealed) == 50
    nonces = {base64.urlsafe_b64decode(s.split(".")[2] + "==")[:12] for s in sealed}
    assert len(nonces) == 50


@pytest.mark.parametrize(
    "other",
    [
        {"tenant_id": 8, "owner_id": 42, "field": "refresh_token"},
        {"tenant_id": 7, "owner_id": 43, "field": "refresh_token"},
        {"tenant_id": 7, "owner_id": 42, "field": "access_token"},
        # Concatenation ambiguity: "7"+"42" must not equal "74"+"2".
        {"tenant_id": 74, "owner_id": 2, "field": "refresh_token"},
    ],
)
def test_ciphertext_copied_to_another_row_or_field_fails(other: dict) -> None:
    v = ring(KEY_A)
    sealed = v.encrypt("bound to its place", **WHERE)
    with pytest.raises(DecryptError) as exc:
        v.decrypt(sealed, **other)
    assert "bound to its place" not in str(exc.value)


def test_tampered_ciphertext_is_refused() -> None:
    v = ring(KEY_A)
    sealed = v.encrypt("tamper me please", **WHERE)
    head, body = sealed.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for i in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        bad = head + "." + base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
        with pytest.raises(DecryptError):
            v.decrypt(bad, **WHERE)
    for garbage in ["", "v1", "v1.a.", "v2.a.AAAA", "v1.a.!!!!", "v1.a.AAAA", "plain-text-token", "v1.a.b.c"]:
        with pytest.raises(DecryptError):
            v.decrypt(garbage, **WHERE)


def test_unknown_kid() -> None:
    sealed = ring(KEY_A).encrypt("sealed with a", **WHERE)
    with pytest.raises(DecryptError, match="'a'") as exc:
        ring(KEY_B).decrypt(sealed, **WHERE)
    assert KEY_B.split(":")[1] not in str(exc.value)


def test_rotation_reencrypts_with_new_key_and_old_values_still_read() -> None:
    old = ring(KEY_A)
    sealed_old = old.encrypt("rotate this token", **WHERE)
    rotated_ring = ring(KEY_B, KEY_A)  # new key first: it encrypts; the old one still decrypts
    assert rotated_ring.current_kid == "b"
    assert rotated_ring.decrypt(sealed_old, **WHERE) == "rotate this token"
    assert rotated_ring.needs_rotation(sealed_old)
    sealed_new = rotated_ring.rotate_value(sealed_old, **WHERE)
    assert rotated_ring.kid_of(sealed_new) == "b"
    assert rotated_ring.decrypt(sealed_new, **WHERE) == "rotate this token"
    # Resumable: rotating an already-current value changes nothing.
    assert rotated_ring.rotate_value(sealed_new, **WHERE) == sealed_new
    # Once the old key leaves the ring, only rotated values are readable.
    new_only = ring(KEY_B)
    assert new_only.decrypt(sealed_new, **WHERE) == "rotate this token"
    with pytest.raises(DecryptError):
        new_only.decrypt(sealed_old, **WHERE)
    # Rotation must bind the value to the same place again.
    with pytest.raises(DecryptError):
        new_only.decrypt(sealed_new, tenant_id=7, owner_id=42, field="client_secret")


SECRETISH = "ZmFrZS1idXQtbG9uZy1lbm91Z2gtc2VjcmV0LXZhbHVl"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        None,
        "changeme",
        "CHANGEME",
        "xxx",
        "XXXXXXXX",
        "your-encryption-key",
        "<base64 key>",
        "undefined",
        "null",
        "placeholder",
        "k1:changeme",
        "k1:<key>",
        "k1:your-key-here",
        "k1:xxx",
        f"k1:{base64.b64encode(os.urandom(16)).decode()}",  # AES-128 length
        f"k1:{base64.b64encode(bytes(32)).decode()}",  # all zeros
        f"k1:{SECRETISH}!",  # not base64
        SECRETISH,  # no kid
        f"bad kid:{base64.b64encode(os.urandom(32)).decode()}",
        f"{KEY_A},{KEY_A}",  # duplicate kid
        f"{KEY_A},,{KEY_B}",
    ],
)
def test_bad_key_rings_are_refused_naming_the_setting_not_the_value(raw: str | None) -> None:
    with pytest.raises(CredentialError) as exc:
        parse_key_ring(raw)
    message = str(exc.value)
    assert message.startswith(KEYS_SETTING)
    assert exc.value.setting == KEYS_SETTING
    for part in (raw or "").replace(",", ":").split(":"):
        # "placeholder" is also a word the message uses to explain itself.
        if len(part) >= 8 and part != "placeholder":
            assert part not in message
    with pytest.raises(CredentialError):
        Vault.from_settings(Settings(encryption_keys=raw or ""))


def test_good_key_rings_parse() -> None:
    url_safe = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    parsed = parse_key_ring(SecretStr(f" {KEY_A} , k-2:{url_safe} "))
    assert [k for k, _ in parsed] == ["a", "k-2"]
    assert all(len(key) == 32 for _, key in parsed)
    from tests.conftest import TEST_KEYS

    assert Vault.from_settings(Settings(encryption_keys=TEST_KEYS)).current_kid == "k1"


@pytest.mark.parametrize("value", ["", None, "  ", "your-client-id", "<client id>", "changeme", "xxx", "null"])
def test_validate_credential_refuses_placeholders(value: str | None) -> None:
    with pytest.raises(CredentialError, match=r"^FIELDHUB_PROVIDERS__ACME__CLIENT_ID ") as exc:
        validate_credential("FIELDHUB_PROVIDERS__ACME__CLIENT_ID", value)
    if value and value.strip():
        assert value not in str(exc.value)


def test_validate_credential_returns_real_values() -> None:
    assert validate_credential("X", SecretStr(" ABx93kd-real ")) == "ABx93kd-real"
    assert validate_credential("X", "AB123") == "AB123"


def test_generate_key_makes_distinct_valid_entries() -> None:
    entries = {generate_key() for _ in range(20)}
    assert len(entries) == 20
    for entry in entries:
        [(kid, key)] = parse_key_ring(entry)
        assert entry.startswith(kid + ":") and len(key) == 32
    with pytest.raises(ValueError):
        generate_key("has.dot")


def test_decrypted_values_are_redacted_from_logs() -> None:
    v = ring(KEY_A)
    token = "decrypted-token-" + os.urandom(8).hex()
    sealed = v.encrypt(token, **WHERE)
    v.decrypt(sealed, **WHERE)
    with structlog.testing.capture_logs(processors=[redact]) as logs:
        structlog.get_logger().info("oauth.used", note=f"sent {token} upstream")
    assert token not in repr(logs)
    assert "[redacted]" in logs[0]["note"]


def test_ensure_demo_key_generates_once_with_mode_600(tmp_path) -> None:
    path = tmp_path / "var" / "demo.key"
    s1 = Settings(mode="demo")
    v1 = ensure_demo_key(s1, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = v1.encrypt("demo token value", **WHERE)
    s2 = Settings(mode="demo")
    v2 = ensure_demo_key(s2, path)
    assert s2.encryption_keys.get_secret_value() == s1.encryption_keys.get_secret_value()
    assert v2.decrypt(sealed, **WHERE) == "demo token value"
    # A key file someone loosened is tightened again.
    os.chmod(path, 0o644)
    ensure_demo_key(Settings(mode="demo"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ensure_demo_key_keeps_configured_keys_and_refuses_production_without(tmp_path) -> None:
    path = tmp_path / "demo.key"
    s = Settings(mode="demo", encryption_keys=KEY_A)
    assert ensure_demo_key(s, path).current_kid == "a"
    assert not path.exists()
    with pytest.raises(CredentialError, match=KEYS_SETTING):
        ensure_demo_key(Settings(mode="production"), path)
    assert not path.exists()
    assert vault_mod.DEMO_KEY_FILE.name.endswith(".key")


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.text(),
    tenant_id=st.integers(min_value=1, max_value=2**31),
    owner_id=st.one_of(st.integers(min_value=1), st.text(min_size=1, max_size=20)),
    field=st.text(min_size=1, max_size=30),
)
def test_round_trip_property(plaintext: str, tenant_id: int, owner_id: object, field: str) -> None:
    v = ring(KEY_B, KEY_A)
    where = {"tenant_id": tenant_id, "owner_id": owner_id, "field": field}
    sealed = v.encrypt(plaintext, **where)
    assert v.decrypt(sealed, **where) == plaintext
    with pytest.raises(DecryptError):
        v.decrypt(sealed, tenant_id=tenant_id + 1, owner_id=owner_id, field=field)


def test_cli_keys_generate_and_start_check() -> None:
    from typer.testing import CliRunner

    from fieldhub.cli import _check_keys, app

    result = CliRunner().invoke(app, ["keys", "generate", "--kid", "k9"])
    assert result.exit_code == 0
    [(kid, key)] = parse_key_ring(result.stdout.strip())
    assert kid == "k9" and len(key) == 32
    import typer

    with pytest.raises(typer.Exit) as exc:
        _check_keys(Settings(mode="production", encryption_keys="your-key"))
    assert exc.value.exit_code == 2
