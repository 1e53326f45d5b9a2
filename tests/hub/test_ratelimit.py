"""The shared limiter: the rate and the concurrency cap hold across engines and across real processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import func, select

from fieldhub.hub.errors import RetryLater
from fieldhub.hub.limits.models import RateBucket, RateLease
from fieldhub.hub.ratelimit import RateLimiter


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    # Ends sort before starts at the same instant: touching intervals don't overlap.
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_max_overlap() -> None:
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 1.6)]) == 3


async def test_rate_is_enforced_across_two_engines(db_url, sessionmaker, engine_factory) -> None:
    _, other_sessionmaker = engine_factory(db_url)
    # A minute in half a second.
    limiters = [RateLimiter(sm, time_scale=120) for sm in (sessionmaker, other_sessionmaker)]
    window = limiters[0].window
    per_minute = 5

    async def one(i: int) -> float:
        async with limiters[i % 2].slot("acme", "realm-1", per_minute=per_minute, concurrency=None) as lease:
            return lease.started_at

    began = time.time()
    starts = sorted(await asyncio.gather(*(one(i) for i in range(12))))
    elapsed = time.time() - began
    for a, b in zip(starts, starts[per_minute:], strict=False):
        assert b - a >= window - 1e-6, "more than N starts inside one window"
    # 12 starts at 5 per window need three windows: the third batch can't begin before two have passed.
    assert starts[10] - starts[0] >= 2 * window - 1e-6
    assert elapsed < 2 * window + 5
    async with sessionmaker() as s:
        locked = await s.scalar(select(RateBucket.version).where(RateBucket.provider == "acme"))
    # PostgreSQL serializes on the bucket's row lock; SQLite on its database write lock (no row needed).
    assert locked is None if db_url.startswith("sqlite") else locked >= 12


async def test_buckets_and_providers_are_independent(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, time_scale=1, max_wait=0)
    for bucket in ("realm-1", "realm-2"):
        await limiter.acquire("acme", bucket, per_minute=1, concurrency=None)
    await limiter.acquire("other", "realm-1", per_minute=1, concurrency=None)
    with pytest.raises(RetryLater):
        await limiter.acquire("acme", "realm-1", per_minute=1, concurrency=None)


async def test_rate_limit_gives_up_with_retry_after(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, time_scale=1)
    for _ in range(3):
        await limiter.acquire("acme", "r", per_minute=3, concurrency=None)
    began = time.time()
    with pytest.raises(RetryLater) as exc:
        await limiter.acquire("acme", "r", per_minute=3, concurrency=None, max_wait=0.2)
    assert time.time() - began >= 0.2
    assert exc.value.retry_after is not None and 58 < exc.value.retry_after <= limiter.window  # a minute and its margin
    assert "rate" in exc.value.reason


async def test_a_request_counts_until_a_window_after_it_ends(sessionmaker) -> None:
    """The provider counts a request when it arrives, which may be long after its slot was taken (a slow
    connect, a busy event loop, several in flight): the window runs from its end, not its start."""
    now = [1_000.0]
    limiter = RateLimiter(sessionmaker, time_scale=1, max_wait=0, clock=lambda: now[0])
    slow = await limiter.acquire("acme", "r", per_minute=1, concurrency=None)
    now[0] += 40.0  # on its way for 40 s: it may reach the provider only now
    with pytest.raises(RetryLater) as held:
        await limiter.acquire("acme", "r", per_minute=1, concurrency=None)
    assert held.value.retry_after == pytest.approx(limiter.window)  # no sooner than a window from now
    await limiter.release(slow)
    now[0] += 30.0  # 70 s after the slot was taken, 30 s after the request ended
    with pytest.raises(RetryLater) as ended:
        await limiter.acquire("acme", "r", per_minute=1, concurrency=None)
    assert ended.value.retry_after == pytest.approx(limiter.window - 30.0)
    now[0] += limiter.window - 30.0 + 0.001
    await limiter.acquire("acme", "r", per_minute=1, concurrency=None)


async def test_a_bucket_over_its_limit_waits_for_the_lease_that_brings_it_under(sessionmaker) -> None:
    """Three requests ended 10, 20 and 30 s ago and the limit is now one a minute (provider.toml changed):
    a fourth may go once all three have left the window, a window after the last ended."""
    now = [1_000.0]
    limiter = RateLimiter(sessionmaker, time_scale=1, max_wait=0, clock=lambda: now[0])
    for _ in range(3):
        await limiter.release(await limiter.acquire("acme", "r", per_minute=3, concurrency=None))
        now[0] += 10.0
    with pytest.raises(RetryLater) as full:
        await limiter.acquire("acme", "r", per_minute=1, concurrency=None)
    assert full.value.retry_after == pytest.approx(limiter.window - 10.0)  # the 3rd ended at 1,020; now 1,030


async def test_a_dead_local_processs_slots_are_given_back_when_the_bucket_is_full(sessionmaker, monkeypatch) -> None:
    """kill -9 mid-request leaves its slots held until they expire (120 s); a process of this machine
    that is gone gives them back as soon as a live one finds the bucket full. One elsewhere can't be judged."""
    import fieldhub.hub.ratelimit as ratelimit
    from fieldhub.hub.processes import MACHINE

    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()  # reaped: what a supervisor sees after kill -9 and before the restart
    now = [1_000.0]
    limiter = RateLimiter(sessionmaker, time_scale=1, max_wait=0, clock=lambda: now[0])
    for holder, bucket in ((f"{MACHINE}:{dead.pid}", "here"), ("other-host:4026531836:1", "there")):
        monkeypatch.setattr(ratelimit, "HOLDER", holder)
        await limiter.acquire("acme", bucket, per_minute=60, concurrency=1)
    monkeypatch.undo()
    now[0] += 5.0
    lease = await limiter.acquire("acme", "here", per_minute=60, concurrency=1)  # the dead one's slot, given back
    with pytest.raises(RetryLater):
        await limiter.acquire("acme", "there", per_minute=60, concurrency=1)  # left to expire
    async with sessionmaker() as s:
        given_back = select(RateLease.released_at).where(RateLease.bucket == "here", RateLease.id != lease.id)
        ended = await s.scalar(given_back)
    assert ended == 1_005.0  # its request may have reached the provider until then: the rate counts from there


async def test_concurrency_is_never_exceeded_with_30_tasks(db_url, sessionmaker, engine_factory) -> None:
    _, other_sessionmaker = engine_factory(db_url)
    limiters = [RateLimiter(sm, poll_seconds=0.02) for sm in (sessionmaker, other_sessionmaker)]
    cap = 3
    intervals: list[tuple[float, float]] = []

    async def one(i: int) -> None:
        async with limiters[i % 2].slot("acme", "realm-1", per_minute=None, concurrency=cap):
            began = time.time()
            await asyncio.sleep(0.02)
            intervals.append((began, time.time()))

    await asyncio.gather(*(one(i) for i in range(30)))
    assert len(intervals) == 30
    assert 2 <= max_overlap(intervals) <= cap
    async with sessionmaker() as s:
        held = await s.scalar(select(func.count()).select_from(RateLease).where(RateLease.released_at.is_(None)))
    assert held == 0


async def test_rate_and_concurrency_together(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, time_scale=60, poll_seconds=0.02)
    intervals: list[tuple[float, float]] = []
    starts: list[float] = []

    async def one() -> None:
        async with limiter.slot("acme", "", per_minute=4, concurrency=2) as lease:
            starts.append(lease.started_at)
            began = time.time()
            await asyncio.sleep(0.01)
            intervals.append((began, time.time()))

    await asyncio.gather(*(one() for _ in range(9)))
    starts.sort()
    assert max_overlap(intervals) <= 2
    for a, b in zip(starts, starts[4:], strict=False):
        assert b - a >= limiter.window - 1e-6


async def test_expired_leases_are_reclaimed(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, lease_seconds=0.4, poll_seconds=0.05)
    crashed = await limiter.acquire("acme", "r", per_minute=None, concurrency=1)  # never released
    with pytest.raises(RetryLater) as exc:
        await limiter.acquire("acme", "r", per_minute=None, concurrency=1, max_wait=0.05)
    assert "concurrency" in exc.value.reason
    assert exc.value.retry_after is not None and exc.value.retry_after <= 0.4
    began = time.time()
    lease = await limiter.acquire("acme", "r", per_minute=None, concurrency=1, max_wait=5)
    assert lease.started_at >= crashed.expires_at
    assert time.time() - began < 2
    await limiter.release(lease)


async def test_old_leases_are_cleaned_up(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, time_scale=600)  # a 0.1 s window
    for _ in range(5):
        async with limiter.slot("acme", "r", per_minute=100, concurrency=None):
            pass
    await asyncio.sleep(0.15)
    async with limiter.slot("acme", "r", per_minute=100, concurrency=None):
        pass
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(RateLease)) == 1


async def test_no_limits_means_no_database_work(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker)
    async with limiter.slot("acme", "r", per_minute=None, concurrency=None) as lease:
        assert lease.id == ""
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(RateBucket)) == 0


async def test_release_wakes_a_local_waiter_at_once(sessionmaker) -> None:
    limiter = RateLimiter(sessionmaker, poll_seconds=5)  # only a wake-up can beat the 5 s poll
    first = await limiter.acquire("acme", "r", per_minute=None, concurrency=1)
    waiter = asyncio.create_task(limiter.acquire("acme", "r", per_minute=None, concurrency=1, max_wait=10))
    await asyncio.sleep(0.1)
    began = time.time()
    await limiter.release(first)
    second = await asyncio.wait_for(waiter, 2)
    assert time.time() - began < 1
    await limiter.release(second)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from fieldhub.db import make_engine, make_sessionmaker
    from fieldhub.hub.ratelimit import RateLimiter

    url, start_at, tasks, cap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    async def main():
        engine = make_engine(url)
        limiter = RateLimiter(make_sessionmaker(engine), poll_seconds=0.02, max_wait=60)
        intervals = []

        async def one():
            async with limiter.slot("acme", "realm-1", per_minute=None, concurrency=cap):
                began = time.time()
                await asyncio.sleep(0.03)
                intervals.append((began, time.time()))

        await asyncio.sleep(max(0.0, start_at - time.time()))
        asked = time.time()
        await asyncio.gather(*(one() for _ in range(tasks)))
        await engine.dispose()
        print(json.dumps({"asked": asked, "intervals": intervals}))

    asyncio.run(main())
    """
)


async def test_concurrency_cap_holds_across_real_processes(db_url, app) -> None:
    cap, tasks = 2, 10
    start_at = time.time() + 4  # both processes are past their imports by then
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            db_url,
            str(start_at),
            str(tasks),
            str(cap),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [await asyncio.wait_for(p.communicate(), 90) for p in procs]
    per_process, asked = [], []
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        # structlog writes to stdout by default: the figures are the last line.
        figures = json.loads(out.decode().strip().splitlines()[-1])
        per_process.append([tuple(i) for i in figures["intervals"]])
        asked.append(figures["asked"])
    assert all(len(p) == tasks for p in per_process)
    everything = per_process[0] + per_process[1]
    assert max_overlap(everything) <= cap
    # The two processes really competed: each was asking for slots before the other had finished. (Not that
    # each got slots while the other held some: a process's own waiters are woken by its releases, another
    # process's only poll, so one process may take every slot until it is done. The cap is what is promised.)
    done = [max(end for _, end in p) for p in per_process]
    assert asked[0] < done[1] and asked[1] < done[0]


async def test_a_request_gets_a_slot_in_every_bucket_it_counts_against_or_in_none(sessionmaker) -> None:
    from fieldhub.hub.ratelimit import Limit

    limiter = RateLimiter(sessionmaker, time_scale=1, max_wait=0)
    batch = (Limit("r:batch", per_minute=1),)  # QBO: a batch request also takes one of the realm's batch slots
    first = await limiter.acquire("acme", "r", per_minute=100, concurrency=10, also=batch)
    assert len(first.also) == 1
    with pytest.raises(RetryLater):
        await limiter.acquire("acme", "r", per_minute=100, concurrency=10, also=batch)
    async with sessionmaker() as s:
        held = dict((await s.execute(select(RateLease.bucket, func.count()).group_by(RateLease.bucket))).all())
    assert held == {"r": 1, "r:batch": 1}  # the refused request left nothing in "r"
    await limiter.release(first)
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).where(RateLease.released_at.is_(None))) == 0
