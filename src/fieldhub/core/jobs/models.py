"""Jobs on the schedule, who is assigned, and time technicians have blocked off."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldhub.core.accounts.models import User
from fieldhub.core.customers.models import Customer
from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, UTCDateTime


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


job_assignments = Table(
    "job_assignments",
    Base.metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Job(TenantRecord, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_tenant_start", "tenant_id", "scheduled_start"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(400), default="")
    scheduled_start: Mapped[datetime] = mapped_column(UTCDateTime())
    scheduled_end: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[JobStatus] = mapped_column(String(20), default=JobStatus.SCHEDULED)
    notes: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship(lazy="joined")
    technicians: Mapped[list[User]] = relationship(secondary=job_assignments, lazy="selectin")


class TimeBlock(TenantRecord, Base):
    """Time a technician is unavailable: entered by hand, or busy time from a connected calendar."""

    __tablename__ = "time_blocks"
    __table_args__ = (
        Index("ix_time_blocks_tenant_start", "tenant_id", "starts_at"),
        Index("ix_time_blocks_external", "tenant_id", "external_key"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(200), default="")
    # "manual", or the provider key that brought it in (a busy event from a calendar).
    source: Mapped[str] = mapped_column(String(40), default="manual")
    # For busy time from a calendar: "<connection id>:<event id>", so the event's move or deletion follows.
    external_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
