"""Core Web Vitals readings (p75 per form factor and collection period) and the log of every SEO fetch."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base, IdMixin, ScaledDecimal, UTCDateTime, utcnow


class VitalsReading(IdMixin, Base):
    __tablename__ = "vitals_readings"
    __table_args__ = (UniqueConstraint("connection_id", "origin", "form_factor", "period_end"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(300))
    form_factor: Mapped[str] = mapped_column(String(10))  # PHONE | DESKTOP
    period_end: Mapped[date] = mapped_column(Date)
    lcp_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inp_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cls: Mapped[Decimal | None] = mapped_column(ScaledDecimal(2), nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SeoFetch(IdMixin, Base):
    """One fetch from an SEO provider, whatever it brought: the page's history of what was fetched and when."""

    __tablename__ = "seo_fetches"
    __table_args__ = (Index("ix_seo_fetches_connection", "connection_id", "fetched_at"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    what: Mapped[str] = mapped_column(String(60))  # "core web vitals"
    target: Mapped[str] = mapped_column(String(300), default="")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    detail: Mapped[str] = mapped_column(Text, default="")
