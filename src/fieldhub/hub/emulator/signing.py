"""RS256 JSON Web Tokens and the JWKS that verifies them, for emulators whose provider signs its tokens (OpenID).

Written on `cryptography` alone (a JWS is three base64url parts and a PKCS#1 v1.5 signature): the emulator signs,
and clients verify with whatever library they use against the key set the emulator publishes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@functools.lru_cache(maxsize=1)
def _new_pem() -> bytes:
    # One key per process: a test run builds hundreds of emulators, and a 2048-bit key takes a fifth of a second.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


class SigningKey:
    """A provider's token-signing key: `sign(claims)` gives a compact JWS, `jwk()` the public half for its JWKS."""

    def __init__(self, pem: bytes | None = None) -> None:
        self.pem = pem or _new_pem()
        loaded = serialization.load_pem_private_key(self.pem, password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        self._key = loaded
        numbers = loaded.public_key().public_numbers()
        self._public = {"kty": "RSA", "e": _uint(numbers.e), "n": _uint(numbers.n)}
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = loaded.public_key().public_bytes(serialization.Encoding.DER, spki)
        # Identity servers name a key by its certificate's SHA-1 thumbprint: kid in hex, x5t in base64url.
        digest = hashlib.sha1(der).digest()  # noqa: S324 - a name for the key, as IdentityServer derives it
        self.kid = digest.hex().upper()
        self.x5t = b64url(digest)

    def jwk(self) -> dict[str, Any]:
        return {**self._public, "use": "sig", "kid": self.kid, "x5t": self.x5t, "alg": "RS256"}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT", "x5t": self.x5t}
        signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def at_hash(access_token: str) -> str:
    """OpenID Connect's `at_hash` for RS256: the left half of the access token's SHA-256, base64url."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return b64url(digest[: len(digest) // 2])
