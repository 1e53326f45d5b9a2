"""A technician's ICS feed: a secret link to their jobs for calendars fieldhub does not connect to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, UTCDateTime, utcnow


class CalendarFeed(IdMixin, Base):
    """One link per technician at a time; a new one (or Revoke) ends the old. Only the token's hash is kept:
    the link is shown once, when it is made."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (Index("ix_calendar_feeds_user", "tenant_id", "user_id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
