"""Secrets at rest: AES-256-GCM with a key ring, associated data binding each value to its row and field."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from fieldhub.log import register_secret
from fieldhub.settings import VAR, Settings

KEYS_SETTING = "FIELDHUB_ENCRYPTION_KEYS"
FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
DEMO_KEY_FILE = VAR / "demo-encryption.key"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Values people leave in .env files when they mean "fill this in later".
_PLACEHOLDERS = {
    "changeme",
    "change-me",
    "change_me",
    "undefined",
    "null",
    "none",
    "nil",
    "placeholder",
    "todo",
    "tbd",
    "secret",
    "dummy",
}


class CredentialError(ValueError):
    """A setting that must hold a credential is empty or a placeholder. The message names the setting only."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"{setting} {problem}")


class DecryptError(Exception):
    """A stored secret could not be read back. Never carries the key, the plaintext or the ciphertext."""


def is_placeholder(value: str) -> bool:
    v = value.strip().lower()
    return (
        v in _PLACEHOLDERS
        or v.startswith(("your-", "your_", "<"))
        or v.endswith(">")
        or v.strip("x") == ""
        or v.strip("*") == ""
    )


def validate_credential(setting_name: str, value: str | SecretStr | None) -> str:
    """The credential's plain value, or CredentialError naming `setting_name` (never the value)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw is None or not raw.strip():
        raise CredentialError(setting_name, "is not set")
    if is_placeholder(raw):
        raise CredentialError(setting_name, "holds a placeholder value; set the real credential")
    return raw.strip()


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    alphabet = "-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(padded, altchars=alphabet.encode() if alphabet else None, validate=True)


def parse_key_ring(raw: str | SecretStr | None, setting: str = KEYS_SETTING) -> list[tuple[str, bytes]]:
    """ "kid1:base64key,kid2:base64key" -> [(kid, 32-byte key)], first one encrypts. Refuses anything doubtful."""
    text = validate_credential(setting, raw)
    ring: list[tuple[str, bytes]] = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            raise CredentialError(setting, f"has an empty entry at position {position}")
        kid, sep, encoded = entry.partition(":")
        kid = kid.strip()
        if not sep or not _KID.match(kid):
            raise CredentialError(
                setting, f"entry {position} is not 'kid:base64key' (kid: letters, digits, - or _, up to 32)"
            )
        if is_placeholder(encoded):
            raise CredentialError(setting, f"key {kid!r} holds a placeholder value")
        try:
            key = _b64decode(encoded)
        except (binascii.Error, ValueError):
            raise CredentialError(setting, f"key {kid!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise CredentialError(setting, f"key {kid!r} must decode to {KEY_BYTES} bytes (AES-256)")
        if len(set(key)) == 1:
            raise CredentialError(setting, f"key {kid!r} is one byte repeated; generate a random key")
        if any(kid == k for k, _ in ring):
            raise CredentialError(setting, f"key id {kid!r} appears twice")
        ring.append((kid, key))
    return ring


def generate_key(kid: str | None = None) -> str:
    """A new random key ring entry, "kid:base64key" (what `fieldhub keys generate` prints)."""
    kid = kid or f"k{datetime.now(UTC):%Y%m%d}{secrets.token_hex(2)}"
    if not _KID.match(kid):
        raise ValueError("a key id is letters, digits, - or _, up to 32")
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _aad(kid: str, tenant_id: object, owner_id: object, field: str) -> bytes:
    # JSON keeps the parts unambiguous ("1","23" can't pass for "12","3"); the header is bound too.
    return json.dumps([FORMAT, kid, str(tenant_id), str(owner_id), field], separators=(",", ":")).encode()


class Vault:
    """Encrypts with the ring's first key, decrypts with any of them (so keys rotate without downtime)."""

    def __init__(self, ring: Iterable[tuple[str, bytes]]) -> None:
        self._keys = {kid: AESGCM(key) for kid, key in ring}
        if not self._keys:
            raise CredentialError(KEYS_SETTING, "is not set")
        self.current_kid = next(iter(self._keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(parse_key_ring(settings.encryption_keys))

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, *, tenant_id: object, owner_id: object, field: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        kid = self.current_kid
        sealed = self._keys[kid].encrypt(nonce, plaintext.encode(), _aad(kid, tenant_id, owner_id, field))
        return f"{FORMAT}.{kid}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"

    def decrypt(self, ciphertext: str, *, tenant_id: object, owner_id: object, field: str) -> str:
        kid, blob = self._split(ciphertext)
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptError(f"the secret was sealed with key {kid!r}, which is not in {KEYS_SETTING}")
        try:
            plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(kid, tenant_id, owner_id, field))
        except InvalidTag:
            raise DecryptError(
                "the secret does not authenticate: tampered, or stored for another record or field"
            ) from None
        value = plain.decode()
        register_secret(value)
        return value

    def kid_of(self, ciphertext: str) -> str:
        return self._split(ciphertext)[0]

    def needs_rotation(self, ciphertext: str) -> bool:
        return self.kid_of(ciphertext) != self.current_kid

    def rotate_value(self, ciphertext: str, *, tenant_id: object, owner_id: object, field: str) -> str:
        """The same secret sealed with the current key; unchanged when it already is (rotation can resume)."""
        if not self.needs_rotation(ciphertext):
            return ciphertext
        plain = self.decrypt(ciphertext, tenant_id=tenant_id, owner_id=owner_id, field=field)
        return self.encrypt(plain, tenant_id=tenant_id, owner_id=owner_id, field=field)

    @staticmethod
    def _split(ciphertext: str) -> tuple[str, bytes]:
        parts = ciphertext.split(".") if isinstance(ciphertext, str) else []
        if len(parts) != 3 or parts[0] != FORMAT or not _KID.match(parts[1]):
            raise DecryptError(f"not a {FORMAT} sealed secret")
        try:
            blob = _b64decode(parts[2])
        except (binascii.Error, ValueError):
            raise DecryptError("the sealed secret is not valid base64") from None
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptError("the sealed secret is truncated")
        return parts[1], blob


def ensure_demo_key(settings: Settings, path: Path | None = None) -> Vault:
    """The vault for `settings`; in demo/test mode with no keys, a key generated once into var/ (mode 600).

    Nothing is derived from other settings: the demo's key is a real random key in a file an operator
    can see, delete or move to the environment. Production without keys is refused.
    """
    if settings.encryption_keys.get_secret_value().strip() or settings.mode == "production":
        return Vault.from_settings(settings)
    path = path or DEMO_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(generate_key("demo") + "\n")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)
    settings.encryption_keys = SecretStr(path.read_text().strip())
    return Vault.from_settings(settings)
