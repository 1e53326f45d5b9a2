"""In-app notifications, each user's email preferences, and the alert emails queued for delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class Notification(IdMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_tenant_unread", "tenant_id", "read_at"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # A dotted kind ("connection.needs_reauth") so a later channel (email) can pick what it sends.
    kind: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class NotificationPreference(IdMixin, Base):
    """Which alert kinds one user wants by email. No row: the role's default (hub.notify.email_kinds_for)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("user_id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OutboundEmail(IdMixin, Base):
    """An alert email, queued in the transaction that raised the alert and delivered after it commits.

    In demo and test mode delivery is to the local mailbox (/dev/mailbox): the row itself, marked delivered.
    """

    __tablename__ = "outbound_emails"
    __table_args__ = (Index("ix_outbound_emails_unsent", "sent_at", "id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL"), nullable=True
    )
    to_address: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    # The same message as HTML (an invoice's Pay Now button); empty for plain-text alerts.
    html_body: Mapped[str] = mapped_column(Text, default="")
    transport: Mapped[str] = mapped_column(String(10), default="")  # smtp | mailbox, once delivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
