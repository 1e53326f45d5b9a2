"""Per-provider rate and concurrency limits shared by every process through the database (no Redis).

A provider meters requests per minute and in flight per account (QBO: 500/min and 10 concurrent per
realm; Xero: 60/min per tenant). Every worker process, on every machine, takes a slot here first:

- Taking a slot locks the (provider, bucket) row in `rate_buckets` with an UPDATE (a row lock on
  PostgreSQL, the write lock on SQLite), then inserts the lease with one INSERT ... SELECT that
  counts the leases and adds the row only if both limits leave room, and commits: three round
  trips when there is room. Counting and taking are one atomic step however many processes race.
- The rate is a sliding window over lease start times: at most N starts in any window of a minute
  (divided by `time_scale`, so a benchmark can run "a minute in a second").
- Concurrency counts leases neither released nor expired. A lease expires after `lease_seconds`, so a
  process that dies mid-request frees its slot by itself.
- A caller that can't get a slot sleeps until one should be free and tries again (woken at once by a
  release in the same process), up to `max_wait`; then RetryLater says when to come back.

Times come from each process's clock: hosts sharing a database are expected to run NTP.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from sqlalchemy import Double, String, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fieldhub.hub.errors import RetryLater
from fieldhub.hub.limits.models import RateBucket, RateLease
from fieldhub.log import get_logger

log = get_logger("fieldhub.ratelimit")
MINUTE = 60.0
HOLDER = f"{socket.gethostname()[:100]}:{os.getpid()}"


@dataclass(frozen=True)
class Lease:
    """A slot held by one request. An id of "" means no limit applied and nothing was stored."""

    id: str
    provider: str
    bucket: str
    started_at: float
    expires_at: float


class RateLimiter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        time_scale: float = 1.0,
        lease_seconds: float = 120.0,
        max_wait: float = 60.0,
        poll_seconds: float = 0.1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._sessionmaker = sessionmaker
        self.time_scale = time_scale
        # Real seconds, not scaled: it must outlast the slowest request, whatever the benchmark speed.
        self.lease_seconds = lease_seconds
        self.max_wait = max_wait
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._sleep = sleep
        self._released: dict[tuple[str, str], asyncio.Event] = {}
        self._pruned_at = 0.0

    @property
    def window(self) -> float:
        return MINUTE / self.time_scale

    @asynccontextmanager
    async def slot(
        self,
        provider: str,
        bucket: str = "",
        *,
        per_minute: int | None,
        concurrency: int | None,
        max_wait: float | None = None,
    ) -> AsyncIterator[Lease]:
        lease = await self.acquire(provider, bucket, per_minute=per_minute, concurrency=concurrency, max_wait=max_wait)
        try:
            yield lease
        finally:
            await self.release(lease)

    async def acquire(
        self,
        provider: str,
        bucket: str = "",
        *,
        per_minute: int | None,
        concurrency: int | None,
        max_wait: float | None = None,
    ) -> Lease:
        """A slot, waiting for one up to `max_wait` seconds; RetryLater(retry_after=…) past that."""
        if not per_minute and not concurrency:
            now = self._clock()
            return Lease("", provider, bucket, now, now)
        max_wait = self.max_wait if max_wait is None else max_wait
        deadline = self._clock() + max_wait
        waited = False
        while True:
            lease, wait, blocked_by = await self._try(provider, bucket, per_minute, concurrency)
            if lease is not None:
                if waited:
                    log.debug("ratelimit.acquired", provider=provider, bucket=bucket)
                return lease
            remaining = deadline - self._clock()
            if remaining <= 0:
                log.info("ratelimit.gave_up", provider=provider, bucket=bucket, limit=blocked_by, retry_after=wait)
                raise RetryLater(f"{provider} is at its {blocked_by} limit; trying again shortly", retry_after=wait)
            waited = True
            await self._wait(provider, bucket, min(wait, remaining), on_release=blocked_by == "concurrency")

    async def release(self, lease: Lease) -> None:
        if not lease.id:
            return
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(RateLease)
                .where(RateLease.id == lease.id, RateLease.released_at.is_(None))
                .values(released_at=self._clock())
            )
        event = self._released.pop((lease.provider, lease.bucket), None)
        if event is not None:
            event.set()

    async def _try(
        self, provider: str, bucket: str, per_minute: int | None, concurrency: int | None
    ) -> tuple[Lease | None, float, str]:
        """One locked attempt: (lease, 0, "") or (None, seconds until a retry is worth it, which limit)."""
        async with self._sessionmaker() as session, session.begin():
            await self._lock_bucket(session, provider, bucket)
            now = self._clock()
            since = now - self.window
            mine = (RateLease.provider == provider, RateLease.bucket == bucket)
            if now - self._pruned_at >= self.window:
                # Leases outside the window that hold no slot any more are history: drop them, under the lock,
                # once a window per process (not on every try: it is a statement each time).
                self._pruned_at = now
                await session.execute(
                    delete(RateLease).where(
                        *mine,
                        RateLease.started_at <= since,
                        or_(RateLease.released_at.is_not(None), RateLease.expires_at <= now),
                    )
                )
            # The common case is one statement: the lease goes in only if both limits leave room for it.
            lease = Lease(uuid.uuid4().hex, provider, bucket, now, now + self.lease_seconds)
            room = []
            if per_minute:
                started_q = select(func.count()).where(*mine, RateLease.started_at > since)
                room.append(started_q.scalar_subquery() < per_minute)
            if concurrency:
                holding = (RateLease.released_at.is_(None), RateLease.expires_at > now)
                active_q = select(func.count()).where(*mine, *holding)
                room.append(active_q.scalar_subquery() < concurrency)
            row = select(
                literal(lease.id, String),
                literal(provider, String),
                literal(bucket, String),
                literal(lease.started_at, Double),
                literal(lease.expires_at, Double),
                literal(HOLDER, String),
            ).where(and_(*room))
            columns = ["id", "provider", "bucket", "started_at", "expires_at", "holder"]
            # RETURNING says whether the row went in (psycopg reports no rowcount for INSERT ... SELECT).
            taken = await session.scalar(insert(RateLease).from_select(columns, row).returning(RateLease.id))
            if taken is not None:
                return lease, 0.0, ""
            # No room: which limit, and when a retry is worth it.
            if per_minute:
                started = await session.scalar(select(func.count()).where(*mine, RateLease.started_at > since))
                if started and started >= per_minute:
                    # The slot frees when the start that puts us at the limit leaves the window.
                    pivot = await session.scalar(
                        select(RateLease.started_at)
                        .where(*mine, RateLease.started_at > since)
                        .order_by(RateLease.started_at)
                        .offset(started - per_minute)
                        .limit(1)
                    )
                    return None, max((pivot or now) + self.window - now, 0.001), "rate"
            if concurrency:
                active = (
                    await session.execute(
                        select(func.count(), func.min(RateLease.expires_at)).where(
                            *mine, RateLease.released_at.is_(None), RateLease.expires_at > now
                        )
                    )
                ).one()
                if active[0] >= concurrency:
                    # Another process's release can't wake us; poll, but never later than the first expiry.
                    return None, max(min(self.poll_seconds, active[1] - now), 0.001), "concurrency"
            return None, self.poll_seconds, "rate"  # pragma: no cover - the counts above saw what the insert saw

    @staticmethod
    async def _lock_bucket(session: AsyncSession, provider: str, bucket: str) -> None:
        # The UPDATE comes first in the transaction on purpose: on SQLite it takes the write lock before
        # anything is read, so no other process can slip a lease in between our count and our insert.
        lock = (
            update(RateBucket)
            .where(RateBucket.provider == provider, RateBucket.bucket == bucket)
            .values(version=RateBucket.version + 1)
        )
        if (await session.execute(lock)).rowcount:  # type: ignore[attr-defined]
            return
        dialect = session.get_bind().dialect.name
        values = {"provider": provider, "bucket": bucket, "version": 0}
        if dialect == "postgresql":
            await session.execute(postgresql.insert(RateBucket).values(values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            await session.execute(sqlite.insert(RateBucket).values(values).on_conflict_do_nothing())
        else:  # pragma: no cover - the hub runs on SQLite or PostgreSQL
            await session.execute(insert(RateBucket).values(values))
        await session.execute(lock)

    async def _wait(self, provider: str, bucket: str, seconds: float, *, on_release: bool) -> None:
        # Jitter spreads waiters that computed the same moment, so they don't all hit the lock together.
        seconds += random.uniform(0, min(seconds * 0.2, self.poll_seconds))
        if not on_release:
            await self._sleep(seconds)
            return
        event = self._released.setdefault((provider, bucket), asyncio.Event())
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
