"""What the pages show about a business's connections to a provider: status, account, health, what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.db import utcnow
from fieldhub.hub import features, registry
from fieldhub.hub.connections import service
from fieldhub.hub.connections.health import HEALTH_SCORING, Health, HealthInputs, TokenState, score
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.features import Features
from fieldhub.hub.spec import AuthMode, ProviderSpec
from fieldhub.hub.sync.status import health_figures
from fieldhub.hub.vault import DecryptError, Vault

# Account details worth a line on the card, in this order, with their labels.
DETAIL_LABELS = {
    "realm_id": "Realm ID",
    "tenant_id": "Tenant ID",
    "account_id": "Account ID",
    "email": "Email",
    "country": "Country",
    "payout_bank": "Payout bank account",
    "charges": "Charges",
    "payouts": "Payouts",
}


def token_state(conn: Connection) -> TokenState:
    if conn.status == ConnectionStatus.NEEDS_REAUTH:
        return TokenState.NEEDS_REAUTH
    if conn.status == ConnectionStatus.CONNECTED and conn.access_token is None:
        return TokenState.NEEDS_REAUTH
    ends = conn.refresh_expires_at
    if ends is None and conn.refresh_token is None:
        # Nothing to refresh with: the grant lasts as long as the access token does (none: forever).
        ends = conn.access_expires_at
    if ends is not None and ends <= utcnow() + HEALTH_SCORING.grant_expiring_within:
        return TokenState.EXPIRING if ends > utcnow() else TokenState.NEEDS_REAUTH
    return TokenState.VALID


def health_of(conn: Connection, figures: dict[str, Any] | None = None) -> Health:
    """Token and status, plus the sync figures (hub.sync.status.health_figures) when given."""
    return score(HealthInputs(status=ConnectionStatus(conn.status), token=token_state(conn), **(figures or {})))


@dataclass
class ConnectionView:
    connection: Connection
    health: Health
    details: list[tuple[str, str]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return ConnectionStatus(self.connection.status).value

    @property
    def status_label(self) -> str:
        return {
            ConnectionStatus.CONNECTED: "Connected",
            ConnectionStatus.NEEDS_REAUTH: "Needs reconnect",
            ConnectionStatus.DISCONNECTED: "Disconnected",
            ConnectionStatus.ERROR: "Error",
        }[ConnectionStatus(self.connection.status)]


@dataclass
class ProviderConnections:
    spec: ProviderSpec
    views: list[ConnectionView]
    # What the provider really does today (hub/features.py): the panel says what works and what is coming.
    features: Features

    @property
    def live(self) -> list[ConnectionView]:
        return [v for v in self.views if v.connection.status != ConnectionStatus.DISCONNECTED]

    @property
    def is_oauth(self) -> bool:
        return self.spec.auth.mode is AuthMode.OAUTH2

    @property
    def is_api_key(self) -> bool:
        return self.spec.auth.mode is AuthMode.API_KEY


def _details(conn: Connection) -> list[tuple[str, str]]:
    if conn.status == ConnectionStatus.DISCONNECTED:
        # What was read while connected ("Charges: Enabled", a payout bank) is not true of it now.
        return []
    stored = conn.account_details or {}
    # The account's name is on the card already: a Google account named by its email shows the email once.
    return [
        (label, str(stored[key]))
        for key, label in DETAIL_LABELS.items()
        if stored.get(key) and str(stored[key]) != conn.account_name
    ]


async def check_readable(session: AsyncSession, vault: Vault, conn: Connection) -> None:
    """Try the stored secrets; one that won't open pauses the connection (the page still renders)."""
    if conn.status != ConnectionStatus.CONNECTED:
        return
    for name in service.SECRET_FIELDS:
        try:
            service.read_secret(vault, conn, name)
        except DecryptError as e:
            await service.unreadable_secret(session, conn, e)
            return


async def provider_connections(
    session: AsyncSession, tenant_id: int, key: str, vault: Vault | None = None
) -> ProviderConnections:
    """Every connection of the tenant to this provider, with health; with a vault, unreadable tokens are caught."""
    spec = registry.get(key)
    rows = await service.for_provider(session, tenant_id, key)
    if vault is not None:
        for conn in rows:
            await check_readable(session, vault, conn)
    # Disconnected rows are history: show the newest one only if nothing is live.
    live = [c for c in rows if c.status != ConnectionStatus.DISCONNECTED]
    shown = live or rows[:1]
    views = []
    for c in shown:
        active = c.status != ConnectionStatus.DISCONNECTED
        figures = await health_figures(session, c.id, since=c.connected_at) if active else None
        views.append(ConnectionView(c, health_of(c, figures), _details(c)))
    return ProviderConnections(spec, views, features.get(key))


@dataclass(frozen=True)
class Summary:
    """A provider's one-line status for the hub grid: connected?, a label, a tone."""

    connected: bool
    label: str
    tone: str


async def summary(session: AsyncSession, tenant_id: int, key: str) -> Summary:
    found = await provider_connections(session, tenant_id, key)
    live = found.live
    if not live:
        if found.views:
            return Summary(False, "Disconnected", "grey")
        return Summary(False, "Not connected", "grey")
    worst = min(live, key=lambda v: v.health.tier)
    if worst.connection.status == ConnectionStatus.CONNECTED:
        label = "Connected" if len(live) == 1 else f"{len(live)} accounts connected"
        return Summary(True, label, "green" if worst.health.tone in ("green", "blue") else worst.health.tone)
    return Summary(True, worst.status_label, "red")
