"""The Leads inbox: a lead from a leads provider (a Thumbtack negotiation) and the messages exchanged on it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, IdMixin, ScaledDecimal, UTCDateTime, utcnow


class LeadStatus(StrEnum):
    NEW = "new"
    REPLIED = "replied"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class Lead(TenantRecord, Base):
    """One lead, unique per provider object however often and in whatever order the provider reports it.

    A message can arrive before its lead: the row is then made with what the message says (`details` False)
    and filled in when the lead itself comes.
    """

    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "remote_id"),
        Index("ix_leads_inbox", "tenant_id", "status", "received_at"),
    )

    provider: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"), nullable=True)
    remote_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[bool] = mapped_column(Boolean, default=False)  # the lead itself has arrived
    status: Mapped[LeadStatus] = mapped_column(String(12), default=LeadStatus.NEW)
    remote_status: Mapped[str] = mapped_column(String(40), default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), nullable=True, index=True)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    customer_phone: Mapped[str] = mapped_column(String(40), default="")
    customer_email: Mapped[str] = mapped_column(String(254), default="")
    category: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    lead_price: Mapped[Decimal | None] = mapped_column(ScaledDecimal(2), nullable=True)
    remote_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    estimate_id: Mapped[int | None] = mapped_column(ForeignKey("estimates.id"), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)


class LeadMessage(IdMixin, Base):
    __tablename__ = "lead_messages"
    __table_args__ = (UniqueConstraint("lead_id", "remote_id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    remote_id: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(20))  # customer | business
    text: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
