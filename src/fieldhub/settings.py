"""The one settings class: every knob is an environment variable FIELDHUB_*."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"


class ProviderCredentials(BaseModel):
    """An app's credentials at one provider: FIELDHUB_PROVIDERS__<KEY>__CLIENT_ID and friends."""

    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    webhook_secret: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")
    # Where the provider's real API lives is in its provider.toml; this overrides it (an emulator on a port).
    base_url: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDHUB_", env_nested_delimiter="__", env_file=None, extra="ignore")

    # production: real provider URLs; demo and test: every provider points at its in-process emulator.
    mode: Literal["production", "demo", "test"] = "production"
    database_url: str = f"sqlite+aiosqlite:///{VAR / 'fieldhub.db'}"
    host: str = "127.0.0.1"
    port: int = 8000
    # The address users reach the hub at: OAuth redirect URIs and pay links are built from it.
    public_url: str = ""
    log_level: str = "INFO"
    log_json: bool = False
    # Cookies are Secure unless the hub is served over plain http on loopback.
    session_days: int = 14
    # Key ring for secrets at rest: "kid1:base64key,kid2:base64key"; the first key encrypts.
    encryption_keys: SecretStr = SecretStr("")
    # Embedded workers inside `fieldhub serve` (SQLite); 0 turns them off (scale-out with `fieldhub worker`).
    embedded_workers: int = 1
    # Periodic tasks (hub/sync/dispatch.py), in seconds: catch-up of remote changes per connection (QuickBooks
    # CDC), the webhook inbox sweep, and token refresh-ahead. Each runs once per round across all workers.
    inbound_poll_seconds: float = 300.0
    webhook_sweep_seconds: float = 60.0
    refresh_ahead_seconds: float = 60.0
    # How long a connection may go without sync traffic before a cheap authenticated call checks that its
    # sign-in still works (hub/connections/probe.py): a grant revoked at the provider shows within this.
    health_check_seconds: float = 900.0
    # E-signatures: an envelope not heard of (webhook or poll) for this long is asked about (DocuSign's guidance:
    # poll one envelope at most every 15 minutes); the webhooks normally tell first.
    esign_poll_seconds: float = 900.0
    # /metrics asks for `Authorization: Bearer <token>` when set; unset, it answers loopback clients only.
    metrics_token: SecretStr = SecretStr("")
    # Billing memory (capabilities/memory): a sent invoice or estimate, and a recorded payment, embed the document
    # into the business's memory. Off unless turned on (FIELDHUB_RAG_BILLING_EMBED_ENABLED=true).
    rag_billing_embed_enabled: bool = False
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "fieldhub@localhost"
    providers: dict[str, ProviderCredentials] = Field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def provider(self, key: str) -> ProviderCredentials:
        configured = self.providers.get(key, ProviderCredentials())
        if self.mode == "production":
            return configured
        # Demo and test: what isn't configured comes from the demo credentials the mounted emulators accept.
        demo = demo_credentials(key)
        filled = {
            name: getattr(configured, name) if _is_set(getattr(configured, name)) else getattr(demo, name)
            for name in ProviderCredentials.model_fields
        }
        return ProviderCredentials(**filled)


def demo_credentials(key: str) -> ProviderCredentials:
    """The app credentials each provider's emulator is built with in demo and test mode (never in production)."""
    return ProviderCredentials(
        client_id=f"demo-{key}-client",
        client_secret=SecretStr(f"demo-{key}-client-secret"),
        webhook_secret=SecretStr(f"demo-{key}-webhook-secret"),
        api_key=SecretStr(f"demo-{key}-api-key"),
    )


def _is_set(value: object) -> bool:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return bool(str(raw).strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
