"""Subcontractors (another company doing part of a job) and sub-tickets: a piece of a job given to one of them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.core.jobs.models import Job
from fieldhub.core.money import ZERO
from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, ScaledDecimal, UTCDateTime


class Subcontractor(TenantRecord, Base):
    __tablename__ = "subcontractors"

    company: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(40), default="")
    trade: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(default=True)


class SubTicketStatus(StrEnum):
    OPEN = "open"  # written, not yet given to anyone
    ASSIGNED = "assigned"
    DONE = "done"
    CANCELLED = "cancelled"


class SubTicket(TenantRecord, Base):
    __tablename__ = "sub_tickets"
    __table_args__ = (Index("ix_sub_tickets_tenant_job", "tenant_id", "job_id"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    subcontractor_id: Mapped[int | None] = mapped_column(
        ForeignKey("subcontractors.id", ondelete="SET NULL"), nullable=True, index=True
    )
    scope: Mapped[str] = mapped_column(Text)
    scheduled_on: Mapped[date] = mapped_column(Date)
    price: Mapped[Decimal] = mapped_column(ScaledDecimal(2), default=ZERO)
    status: Mapped[SubTicketStatus] = mapped_column(String(20), default=SubTicketStatus.OPEN)
    # The subcontractor's private link (/sub/<token>), as an invoice's pay link: unguessable, no login. A new
    # one is drawn at every (re)assignment, so a subcontractor taken off the work can no longer open it.
    public_token: Mapped[str] = mapped_column(String(64), unique=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    job: Mapped[Job] = relationship(lazy="joined")
    subcontractor: Mapped[Subcontractor | None] = relationship(lazy="joined")
