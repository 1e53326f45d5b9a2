"""The connections table (tokens sealed by the vault) and the single-use OAuth states of connects in flight."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, TimestampMixin, UTCDateTime


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"  # the grant is gone or unreadable: syncing is paused until Reconnect
    DISCONNECTED = "disconnected"  # the business disconnected it; tokens are deleted, synced data stays
    ERROR = "error"


class Connection(IdMixin, TimestampMixin, Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "account_id"),
        # An account a business owns is held by one connection at most, whichever tenant: the database's answer
        # to two businesses connecting it at the same moment (hub/connections/service.save_connected). A plain
        # unique index over a column that is NULL unless held: a partial index with no rows in it turned
        # SQLite's plan for the sync sweep (which joins connections) into a scan of the whole ledger.
        UniqueConstraint("provider", "held_account"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    status: Mapped[ConnectionStatus] = mapped_column(String(20), default=ConnectionStatus.CONNECTED)
    # The account at the provider: QBO realm, Xero tenant, a mailbox... and its display name.
    account_id: Mapped[str] = mapped_column(String(200))
    account_name: Mapped[str] = mapped_column(String(300), default="")
    # The account is the business's own (provider.toml one_business_per_account): no other business may hold it.
    owns_account: Mapped[bool] = mapped_column(Boolean, default=False)
    # account_id while this connection holds the account (owned, not disconnected), else NULL: set by _hold()
    # below on every write of the row.
    held_account: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Non-secret facts about the account shown on the card (Realm ID, email, country...).
    account_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Sealed by the vault with associated data (tenant, connection id, field): never plaintext.
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    scopes: Mapped[str] = mapped_column(Text, default="")
    # What went wrong, in plain words for the business owner; empty when healthy.
    sync_error: Mapped[str] = mapped_column(Text, default="")
    auto_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bumped on every token write: a writer that read version N may only store if it is still N.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The health check (hub/connections/probe.py): when it last asked the provider, and what stopped it from
    # hearing back ("" when the provider answered). A failure to reach the provider is not a dead grant.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    check_error: Mapped[str] = mapped_column(Text, default="")
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def is_active(self) -> bool:
        return self.status == ConnectionStatus.CONNECTED


@event.listens_for(Connection, "before_insert")
@event.listens_for(Connection, "before_update")
def _hold(_mapper: object, _connection: object, conn: Connection) -> None:
    """Keep held_account true to status and owns_account on every write of the row (an unset status is the
    column's default, connected)."""
    status = ConnectionStatus(str(conn.status or ConnectionStatus.CONNECTED))
    held = bool(conn.owns_account) and status != ConnectionStatus.DISCONNECTED
    conn.held_account = conn.account_id if held else None


class OAuthState(IdMixin, Base):
    """One authorization request in flight. The `state` value itself is never stored, only its SHA-256."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The login session that started it: the callback must come back in the same browser session.
    login_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    provider: Mapped[str] = mapped_column(String(64))
    # PKCE verifier, sealed by the vault (owner = this state's hash).
    code_verifier: Mapped[str | None] = mapped_column(Text, nullable=True)
    redirect_target: Mapped[str] = mapped_column(String(10), default="popup")  # popup | page
    reconnect_connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
