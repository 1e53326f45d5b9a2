"""The Authlib OAuth 2.0 client for one provider, built from its spec, its validated credentials and its endpoints."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import authlib.deprecate  # noqa: F401 - installs its "always" filter first, so the "ignore" below wins

from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import ProviderSpec
from fieldhub.hub.vault import validate_credential
from fieldhub.settings import Settings

with warnings.catch_warnings():
    # Authlib prefers the httpx2 package and warns when it falls back to httpx, which is what we use: the hub's
    # transports (the emulators' ASGI ones), timeouts and `except httpx.HTTPError` are httpx's. httpx2 may be
    # installed all the same (huggingface_hub 2 and langsmith 0.14+ need it): hidden while Authlib picks, so its
    # clients are httpx clients whatever else is installed, then given back to whoever imports it.
    warnings.simplefilter("ignore")
    _httpx2 = sys.modules.get("httpx2")
    sys.modules["httpx2"] = None  # type: ignore[assignment]
    try:
        from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError  # noqa: F401 - re-exported
    finally:
        if _httpx2 is None:
            del sys.modules["httpx2"]
        else:
            sys.modules["httpx2"] = _httpx2

CALLBACK_PATH = "/oauth/callback"


def redirect_uri(settings: Settings) -> str:
    """The one exact redirect URI registered at every provider."""
    return settings.base_url + CALLBACK_PATH


def setting_name(key: str, field: str) -> str:
    return f"FIELDHUB_PROVIDERS__{key.upper()}__{field.upper()}"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str


def credentials(env: OAuthEnv, spec: ProviderSpec) -> Credentials:
    """The app's client id and secret, or CredentialError naming the setting (never its value)."""
    creds = env.settings.provider(spec.key)
    return Credentials(
        client_id=validate_credential(setting_name(spec.key, "client_id"), creds.client_id),
        client_secret=validate_credential(setting_name(spec.key, "client_secret"), creds.client_secret),
    )


@dataclass(frozen=True)
class ProviderUrls:
    authorize: str
    token: str
    revoke: str | None


def urls(env: OAuthEnv, spec: ProviderSpec) -> ProviderUrls:
    auth = spec.auth
    assert auth.authorize_url and auth.token_url, "oauth2 specs always have both"
    return ProviderUrls(
        authorize=env.endpoints.url(spec.key, auth.authorize_url),
        token=env.endpoints.url(spec.key, auth.token_url),
        revoke=env.endpoints.url(spec.key, auth.revoke_url) if auth.revoke_url else None,
    )


def oauth_client(env: OAuthEnv, spec: ProviderSpec, creds: Credentials | None = None) -> AsyncOAuth2Client:
    creds = creds or credentials(env, spec)
    method = "client_secret_basic" if spec.auth.client_auth == "basic" else "client_secret_post"
    kwargs: dict = {"timeout": 30.0}
    transport = env.endpoints.transport(spec.key)
    if transport is not None:
        kwargs["transport"] = transport
    return AsyncOAuth2Client(
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        scope=" ".join(spec.auth.scopes) or None,
        redirect_uri=redirect_uri(env.settings),
        code_challenge_method="S256" if spec.auth.pkce else None,
        **kwargs,
    )
