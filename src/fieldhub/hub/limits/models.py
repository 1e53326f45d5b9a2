"""rate_buckets (one lock row per provider and account) and rate_leases (one row per request slot)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldhub.db import Base


class RateBucket(Base):
    """The row every acquirer of one (provider, bucket) locks first, so counting and taking a slot is atomic.

    An UPDATE of this row is the lock on both databases: a row lock held to commit on PostgreSQL, the
    database write lock on SQLite. `version` counts the slots ever handed out (handy when benchmarking).
    """

    __tablename__ = "rate_buckets"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What the provider meters on: a realm, a tenant, an app; "" when it meters the whole app.
    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class RateLease(Base):
    """One request slot. It counts toward the per-minute rate from its start until a window after its
    release (the provider counts the request somewhere between the two); it holds a concurrency slot until
    released or until it expires, so a crashed process can't leak one (nor hold the rate past its expiry).

    Times are epoch seconds as floats: the limiter's arithmetic is in seconds, scaled for benchmarks.
    """

    __tablename__ = "rate_leases"
    __table_args__ = (Index("ix_rate_leases_provider_bucket_started_at", "provider", "bucket", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    bucket: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    released_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # host:pid of the process holding it, for whoever is looking at a stuck slot.
    holder: Mapped[str] = mapped_column(String(120), default="")
