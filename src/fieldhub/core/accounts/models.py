"""Tenants (businesses), users and their roles, login sessions and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.db import Base, IdMixin, TimestampMixin, UTCDateTime


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    TECHNICIAN = "technician"

    @property
    def manages_business(self) -> bool:
        """Owner and Admin: refunds, voids, deletes and every setting (integrations, mappings, tax rates)."""
        return self in (Role.OWNER, Role.ADMIN)

    @property
    def manages_integrations(self) -> bool:
        return self.manages_business


class Tenant(IdMixin, TimestampMixin, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="America/Chicago")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    country: Mapped[str] = mapped_column(String(2), default="US")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    # Technicians get a colour on the schedule.
    color: Mapped[str] = mapped_column(String(7), default="#3b82f6")

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class LoginSession(IdMixin, Base):
    """Server-side session: the cookie holds a random value, the table its SHA-256."""

    __tablename__ = "login_sessions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")


class ApiToken(IdMixin, Base):
    """Personal API token for /api/v1, stored as its SHA-256; the value is shown once. It acts as its user, with
    the user's role; it stops working at `expires_at` (chosen at creation) or once revoked. `prefix` is what a
    list may show of it (`fhp_` and 6 characters): not enough to use, enough to recognise."""

    __tablename__ = "api_tokens"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Written at most once a minute per token (core/accounts/service.py LAST_USED_EVERY), not on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class LoginThrottle(Base):
    """One fixed window of failed sign-ins for one rule and subject (an account's email or a client address,
    each stored as a SHA-256), or an address an account signed in from. In the database so that every
    `fieldhub serve` process sharing it counts the same attempts (core/accounts/throttle.py)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
