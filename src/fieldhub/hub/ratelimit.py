"""Per-provider rate and concurrency limits shared by every process through the database (no Redis).

A provider meters requests per minute and in flight per account (QBO: 500/min and 10 concurrent per
realm; Xero: 60/min per tenant). Every worker process, on every machine, takes a slot here first:

- Taking a slot is one transaction whose INSERT ... SELECT adds a lease to every bucket the request
  counts against (QBO: a batch request also takes a batch slot), each only if every limit leaves room:
  all or none. On PostgreSQL an UPDATE of each (provider, bucket) row in `rate_buckets` locks it first;
  on SQLite the INSERT itself takes the database's one write lock before it reads. Counting and taking
  are one atomic step however many processes race.
- The rate is a sliding window: at most N leases counted in any window of a minute (divided by
  `time_scale`, so a benchmark can run "a minute in a second"). A lease counts from when it is taken
  until a window after it ends (released, or expired if its process died): the provider counts the
  request when it arrives, somewhere between the two, and so however long a request takes to leave
  or to travel (a busy event loop, several in flight) it can't reach the provider inside its minute.
- Concurrency counts leases neither released nor expired. A lease expires after `lease_seconds`, so a
  process that dies mid-request frees its slot by itself; sooner if it ran on this machine, as a full
  bucket gives back the slots of processes found gone (`processes.gone`).
- A caller that can't get a slot sleeps until one should be free and tries again (woken at once by a
  release in the same process), up to `max_wait`; then RetryLater says when to come back.

Times come from each process's clock: hosts sharing a database are expected to run NTP.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Double, String, and_, bindparam, delete, func, insert, select, union_all, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from fieldhub.hub import processes
from fieldhub.hub.errors import NoSlot
from fieldhub.hub.limits.models import RateBucket, RateLease
from fieldhub.log import get_logger

log = get_logger("fieldhub.ratelimit")
MINUTE = 60.0
WINDOW_MARGIN = 0.25  # real seconds added to every window (at most 0.5 % of it); see RateLimiter.window
RATE_JITTER = 0.002  # of the window: 0.12 s at QBO's real minute, 2 ms at --time-scale 60 (see _wait)
HOLDER = processes.PROCESS


@dataclass(frozen=True)
class Lease:
    """A slot held by one request. An id of "" means no limit applied and nothing was stored.

    `also`: the ids of the slots taken with it in other buckets (a QBO batch request also holds one of
    the realm's batch slots); they are released together.
    """

    id: str
    provider: str
    bucket: str
    started_at: float
    expires_at: float
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limit:
    """One bucket's limits: at most `per_minute` starts in a window and `concurrency` held at once."""

    bucket: str
    per_minute: int | None
    concurrency: int | None = None


class _NoRoom(Exception):
    """No room: `until` is the clock time when a retry is worth it. A time, not a duration: the statements
    that found the bucket full took milliseconds of their own, and a wait computed from the clock they
    started with would oversleep by that much (at --time-scale 60, once a window)."""

    def __init__(self, until: float, blocked_by: str, bucket: str) -> None:
        self.until, self.blocked_by, self.bucket = until, blocked_by, bucket


# The statements a slot costs, built once: a statement object is immutable and keeps its cache key, so a
# call only binds values (building them per call cost more CPU than the database spent running them).
_MINE = (RateLease.provider == bindparam("v_provider"), RateLease.bucket == bindparam("v_bucket"))
_HOLDING = (RateLease.released_at.is_(None), RateLease.expires_at > bindparam("v_now"))
_LOCK = (
    update(RateBucket)
    .where(RateBucket.provider == bindparam("v_provider"), RateBucket.bucket == bindparam("v_bucket"))
    .values(version=RateBucket.version + 1)
)
# When a lease stops counting toward the rate, less the window: its release, or its expiry while held.
_ENDED = func.coalesce(RateLease.released_at, RateLease.expires_at)
# Leases that ended a window ago or more are history (a held lease's expiry is in the future).
_PRUNE = delete(RateLease).where(*_MINE, bindparam("v_since") >= _ENDED)
_COUNTED = select(func.count()).where(*_MINE, bindparam("v_since") < _ENDED)
# A full bucket's pivot: the lease whose end puts it at the limit (the v_offset-th to end, oldest first).
_PIVOT = (
    select(_ENDED, RateLease.released_at)
    .where(*_MINE, bindparam("v_since") < _ENDED)
    .order_by(_ENDED)
    .offset(bindparam("v_offset"))
    .limit(1)
)
_ACTIVE = select(func.count(), func.min(RateLease.expires_at)).where(*_MINE, *_HOLDING)
_HELD_BY = select(RateLease.id, RateLease.holder).where(*_MINE, *_HOLDING)
_RELEASE = (
    update(RateLease)
    .where(RateLease.id.in_(bindparam("v_ids", expanding=True)), RateLease.released_at.is_(None))
    .values(released_at=bindparam("v_at"))
)
_COLUMNS = ["id", "provider", "bucket", "started_at", "expires_at", "holder"]


_TAKE: dict[tuple[tuple[bool, bool], ...], Any] = {}


def _take_statement(shape: tuple[tuple[bool, bool], ...]) -> Any:
    """One INSERT ... SELECT that adds a lease to every bucket (bucket k's (rate, concurrency) limits in
    force are shape[k]), each row only if every limit of every bucket leaves room: all or none, in one
    statement. RETURNING says whether it did (psycopg reports no rowcount for INSERT ... SELECT). Built
    once per shape."""
    if shape not in _TAKE:
        room = []
        for k, (rate, conc) in enumerate(shape):
            mine = (RateLease.provider == bindparam("v_provider"), RateLease.bucket == bindparam(f"v_bucket_{k}"))
            if rate:
                counted = select(func.count()).where(*mine, bindparam("v_since") < _ENDED)
                room.append(counted.scalar_subquery() < bindparam(f"v_per_minute_{k}"))
            if conc:
                held = select(func.count()).where(*mine, *_HOLDING)
                room.append(held.scalar_subquery() < bindparam(f"v_concurrency_{k}"))
        rows = [
            select(
                bindparam(f"v_id_{k}", type_=String),
                bindparam("v_provider", type_=String),
                bindparam(f"v_bucket_{k}", type_=String),
                bindparam("v_now", type_=Double),
                bindparam("v_expires_at", type_=Double),
                bindparam("v_holder", type_=String),
            ).where(and_(*room))
            for k in range(len(shape))
        ]
        source = rows[0] if len(rows) == 1 else union_all(*rows)
        _TAKE[shape] = insert(RateLease).from_select(_COLUMNS, source).returning(RateLease.id)
    return _TAKE[shape]


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
        # Core connections, not ORM sessions: a slot is a few plain statements on every provider call,
        # and a session's unit of work and in-Python evaluation of UPDATE criteria cost more than they do.
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._sqlite = self._engine.dialect.name == "sqlite"
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
        """The provider's minute (scaled), plus a margin for clocks: a lease counts until a window after it
        ended, so the time a request takes to leave and arrive is covered already, and what is left is the
        provider's clock against ours (and one host's against another's, sharing a database: NTP keeps
        them within milliseconds). At QBO's real speed the margin is 0.25 s; a scaled minute keeps 0.5 % of
        itself (5 ms at 60x: the emulator's clock and ours tick off the same machine's).

        Before leases counted until they ended, a slot counted from when it was taken and the margin had to
        cover the trip as well: 2 % of a scaled minute, of which a 10,000-invoice backfill at 60x used 12 ms
        of the 20, one batch in flight."""
        minute = MINUTE / self.time_scale
        return minute + min(WINDOW_MARGIN, minute * 0.005)

    @asynccontextmanager
    async def slot(
        self,
        provider: str,
        bucket: str = "",
        *,
        per_minute: int | None,
        concurrency: int | None,
        max_wait: float | None = None,
        also: Sequence[Limit] = (),
    ) -> AsyncIterator[Lease]:
        lease = await self.acquire(
            provider, bucket, per_minute=per_minute, concurrency=concurrency, max_wait=max_wait, also=also
        )
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
        also: Sequence[Limit] = (),
    ) -> Lease:
        """A slot, waiting for one up to `max_wait` seconds; RetryLater(retry_after=…) past that.

        `also`: more buckets this request counts against; it gets a slot in every one of them or in none,
        in one transaction.
        """
        limits = [lim for lim in (Limit(bucket, per_minute, concurrency), *also) if lim.per_minute or lim.concurrency]
        if not limits:
            now = self._clock()
            return Lease("", provider, bucket, now, now)
        max_wait = self.max_wait if max_wait is None else max_wait
        deadline = self._clock() + max_wait
        waited = False
        while True:
            try:
                lease = await self._try(provider, bucket, limits)
            except _NoRoom as full:
                now = self._clock()
                wait, remaining = max(full.until - now, 0.001), deadline - now
                if remaining <= 0:
                    log.info(
                        "ratelimit.gave_up",
                        provider=provider,
                        bucket=full.bucket,
                        limit=full.blocked_by,
                        retry_after=wait,
                    )
                    raise NoSlot(
                        f"{provider} is at its {full.blocked_by} limit; trying again shortly",
                        retry_after=wait,
                        bucket=full.bucket,
                    ) from None
                waited = True
                await self._wait(
                    provider, full.bucket, min(wait, remaining), on_release=full.blocked_by == "concurrency"
                )
                continue
            if waited:
                log.debug("ratelimit.acquired", provider=provider, bucket=bucket)
            return lease

    async def release(self, lease: Lease) -> None:
        if not lease.id:
            return
        async with self._engine.begin() as conn:
            await conn.execute(_RELEASE, {"v_ids": [lease.id, *lease.also], "v_at": self._clock()})
        event = self._released.pop((lease.provider, lease.bucket), None)
        if event is not None:
            event.set()

    async def _try(self, provider: str, bucket: str, limits: list[Limit]) -> Lease:
        """One transaction: a lease in every limit's bucket, all or none (one INSERT ... SELECT), or _NoRoom
        saying which limit is full and how many seconds until a retry is worth it.

        On PostgreSQL each bucket's row is locked first, in one order by every process (two requests can't
        wait on each other's lock); the INSERT, a later statement, then counts what the lock holders before
        it committed. On SQLite nothing is locked first: a writing statement takes the database's one write
        lock before it reads. (Autocommit would save SQLite the commit's round trip, but aiosqlite sets a
        connection's isolation level with a round trip of its own, twice per checkout: measured slower.)
        """
        async with self._engine.begin() as conn:
            now = self._clock()
            where = {"v_provider": provider, "v_now": now, "v_since": now - self.window}
            if not self._sqlite:
                for limit in sorted(limits, key=lambda lim: lim.bucket):
                    await self._lock_bucket(conn, {**where, "v_bucket": limit.bucket})
            # Under the lock, at most once a window and never more than ten times a second (a benchmark's
            # scaled window is µs): not on every try, it is a statement per bucket.
            if now - self._pruned_at >= max(self.window, 0.1):
                self._pruned_at = now
                for limit in limits:
                    await conn.execute(_PRUNE, {**where, "v_bucket": limit.bucket})
            ids = [uuid.uuid4().hex for _ in limits]
            values: dict[str, Any] = {**where, "v_expires_at": now + self.lease_seconds, "v_holder": HOLDER}
            for k, (limit, lease_id) in enumerate(zip(limits, ids, strict=True)):
                values |= {
                    f"v_id_{k}": lease_id,
                    f"v_bucket_{k}": limit.bucket,
                    f"v_per_minute_{k}": limit.per_minute,
                    f"v_concurrency_{k}": limit.concurrency,
                }
            shape = tuple((bool(limit.per_minute), bool(limit.concurrency)) for limit in limits)
            take = _take_statement(shape)
            taken = (await conn.execute(take, values)).first() is not None
            if not taken:  # no room; unless slots held by processes found gone can be given back
                wheres = [{**where, "v_bucket": limit.bucket} for limit in limits]
                if sum([await self._give_back_gone(conn, w, now) for w in wheres]):
                    taken = (await conn.execute(take, values)).first() is not None
            if taken:
                return Lease(ids[0], provider, bucket, now, now + self.lease_seconds, tuple(ids[1:]))
            full = [await self._why_full(conn, limit, w, now) for limit, w in zip(limits, wheres, strict=True)]
        # Committed, not rolled back: the prune, and any slots given back.
        raise next((f for f in full if f), None) or _NoRoom(now + self.poll_seconds, "rate", limits[0].bucket)

    @staticmethod
    async def _give_back_gone(conn: AsyncConnection, where: dict[str, Any], now: float) -> int:
        """Slots still held by a process of this machine that is gone (kill -9, OOM) are given back, ending now
        (their requests may have reached the provider until now), instead of holding a restarted worker back
        until they expire (`lease_seconds`). Only when a bucket is full; a holder elsewhere is left to expire.
        How many were given back."""
        held = (await conn.execute(_HELD_BY, where)).all()
        verdicts = {holder: processes.gone(holder) for holder in {holder for _, holder in held}}
        dead = [lease_id for lease_id, holder in held if verdicts[holder]]
        if dead:
            log.warning("ratelimit.holder_gone", bucket=where["v_bucket"], slots=len(dead))
            await conn.execute(_RELEASE, {"v_ids": dead, "v_at": now})
        return len(dead)

    async def _why_full(self, conn: AsyncConnection, limit: Limit, where: dict[str, Any], now: float) -> _NoRoom | None:
        """If this bucket has no room: which limit, and when a retry is worth it."""
        if limit.per_minute:
            counted = await conn.scalar(_COUNTED, where)
            if counted and counted >= limit.per_minute:
                # The slot frees a window after the lease whose end puts us at the limit ends.
                pivot = (await conn.execute(_PIVOT, {**where, "v_offset": counted - limit.per_minute})).first()
                # A lease still held ends no sooner than now, so its slot frees no sooner than a window from now.
                ended = now if pivot is None or pivot.released_at is None else pivot[0]
                return _NoRoom(ended + self.window, "rate", limit.bucket)
        if limit.concurrency:
            active = (await conn.execute(_ACTIVE, where)).one()
            if active[0] >= limit.concurrency:
                # Another process's release can't wake us; poll, but never later than the first expiry.
                return _NoRoom(min(now + self.poll_seconds, active[1]), "concurrency", limit.bucket)
        return None

    @staticmethod
    async def _lock_bucket(conn: AsyncConnection, where: dict[str, Any]) -> None:
        # PostgreSQL: the row lock serializes the count-and-insert of every process on this bucket.
        if (await conn.execute(_LOCK, where)).rowcount:
            return
        values = {"provider": where["v_provider"], "bucket": where["v_bucket"], "version": 0}
        await conn.execute(postgresql.insert(RateBucket).values(values).on_conflict_do_nothing())
        await conn.execute(_LOCK, where)

    async def _wait(self, provider: str, bucket: str, seconds: float, *, on_release: bool) -> None:
        # Jitter spreads waiters that computed the same moment, so they don't all hit the lock together. A
        # rate wait's jitter is at most RATE_JITTER of the window, the limiter's own (scaled) time: a few ms
        # spread a herd as well as 100 ms do, and an unscaled 0.1 s was 10 % of a 60x minute, lost once a
        # window by a lone waiter (measured: 0.47 s of a 10,000-invoice backfill's 11.9 s).
        cap = self.poll_seconds if on_release else self.window * RATE_JITTER
        seconds += random.uniform(0, min(seconds * 0.2, cap))
        if not on_release:
            await self._sleep(seconds)
            return
        event = self._released.setdefault((provider, bucket), asyncio.Event())
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
