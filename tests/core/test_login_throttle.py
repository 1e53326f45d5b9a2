"""Issue 14 item 2: sign-ins hash off the event loop in a bounded pool, and failures are throttled per account and
per client address in the database, shared by every process, without locking the owner out."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
import structlog
from argon2 import PasswordHasher
from sqlalchemy import select
from tests.conftest import PASSWORD, Business

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts import throttle
from fieldhub.core.accounts.models import LoginThrottle
from fieldhub.db import utcnow
from fieldhub.log import redact


class GatedHasher(PasswordHasher):
    """verify() waits for the event loop to open a gate: if it ran on the loop itself, nothing could open it."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0
        self.gate_was_open: list[bool] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's own name
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate_was_open.append(self.gate.wait(timeout=2))
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def hasher():
    kept = accounts._hasher
    gated = GatedHasher()
    accounts.use_hasher(gated)
    yield gated
    accounts.use_hasher(kept)


async def _sign_in(sessionmaker, email: str, password: str = "wrong", address: str = "198.51.100.1", now=None):  # noqa: ANN001, ANN202
    async with sessionmaker() as session:
        done = await accounts.sign_in(session, email, password, address, now=now)
        await session.commit()
        return done


async def test_issue14_item2_password_hashing_leaves_the_event_loop_free(
    sessionmaker, biz: Business, hasher: GatedHasher
) -> None:
    async def open_gate_from_the_loop() -> None:
        await asyncio.sleep(0.05)
        hasher.gate.set()

    n = accounts.HASH_THREADS + 3
    emails = [f"nobody{i}@x.test" for i in range(n - 1)] + [biz.owner.email]
    results = await asyncio.gather(
        *(_sign_in(sessionmaker, e, PASSWORD, address=f"203.0.113.{i}") for i, e in enumerate(emails)),
        open_gate_from_the_loop(),
    )
    assert hasher.gate_was_open == [True] * n  # the loop ran while the hashes waited: they were off it
    assert 1 <= hasher.most <= accounts.HASH_THREADS  # and no more at once than the pool's threads
    assert [r.user is not None for r in results[:n]] == [False] * (n - 1) + [True]


async def test_issue14_item2_account_limit_slows_but_does_not_lock_out(sessionmaker, biz: Business) -> None:
    email, now = biz.owner.email, utcnow()
    limit = next(r for r in throttle.RULES if r.scope == "account" and r.seconds == 60).limit
    for i in range(limit):  # from many addresses: the address rules don't bind, the account's does
        done = await _sign_in(sessionmaker, email, address=f"192.0.2.{i}", now=now)
        assert done.user is None and done.retry_after == 0
    refused = await _sign_in(sessionmaker, email, PASSWORD, address="192.0.2.200", now=now + timedelta(seconds=5))
    assert refused.user is None and 0 < refused.retry_after <= 55  # even the right password waits: not checked
    # The window ends by itself: the owner gets in without anyone lifting a lock.
    later = await _sign_in(sessionmaker, email, PASSWORD, address="192.0.2.200", now=now + timedelta(seconds=61))
    assert later.user is not None and later.user.id == biz.owner.id


async def test_issue14_item2_owner_signs_in_from_a_known_address_while_attacked(sessionmaker, biz: Business) -> None:
    email, now, home = biz.owner.email, utcnow(), "198.51.100.7"
    assert (await _sign_in(sessionmaker, email, PASSWORD, address=home, now=now)).user is not None
    for i in range(20):  # an attacker fills the account's window, from addresses of its own
        await _sign_in(sessionmaker, email, address=f"10.9.9.{i}", now=now + timedelta(seconds=1))
    stranger = await _sign_in(sessionmaker, email, PASSWORD, address="10.10.10.10", now=now + timedelta(seconds=2))
    assert stranger.user is None and stranger.retry_after > 0
    owner = await _sign_in(sessionmaker, email, PASSWORD, address=home, now=now + timedelta(seconds=2))
    assert owner.user is not None and owner.user.id == biz.owner.id


async def test_issue14_item2_address_limit_blocks_only_that_address(sessionmaker, biz: Business) -> None:
    now, attacker = utcnow(), "203.0.113.66"
    limit = next(r for r in throttle.RULES if r.scope == "address" and r.seconds == 60).limit
    for i in range(limit):  # a different account each time: only the address rule counts them all
        assert (await _sign_in(sessionmaker, f"victim{i}@x.test", address=attacker, now=now)).retry_after == 0
    blocked = await _sign_in(sessionmaker, biz.admin.email, PASSWORD, address=attacker, now=now)
    assert blocked.user is None and blocked.retry_after > 0
    assert (await _sign_in(sessionmaker, biz.owner.email, PASSWORD, address="198.51.100.9", now=now)).user is not None
    assert (await _sign_in(sessionmaker, "victim0@x.test", address="198.51.100.9", now=now)).retry_after == 0


async def test_issue14_item2_concurrent_failures_cannot_slip_past_the_limit(
    app, biz: Business, engine_factory, db_url: str
) -> None:
    """Twenty attempts at once, through two engines (two processes' pools on one database): at most the
    account's limit reach the password check."""
    kept = accounts._hasher
    counting = GatedHasher()
    counting.gate.set()
    accounts.use_hasher(counting)
    try:
        makers = [engine_factory(db_url)[1] for _ in range(2)]
        results = await asyncio.gather(
            *(_sign_in(makers[i % 2], biz.owner.email, address=f"192.0.2.{i}") for i in range(20))
        )
    finally:
        accounts.use_hasher(kept)
    limit = next(r for r in throttle.RULES if r.scope == "account" and r.seconds == 60).limit
    assert counting.calls == limit
    assert sum(1 for r in results if r.retry_after) == 20 - limit


async def test_issue14_item2_failures_are_logged_masked_and_stored_hashed(sessionmaker, session, biz: Business) -> None:
    with structlog.testing.capture_logs(processors=[redact]) as logs:
        await _sign_in(sessionmaker, "Owner@A.test ", "hunter2-secret", address="192.0.2.44")
    failed = [e for e in logs if e["event"] == "auth.login.failed"]
    assert failed == [
        {"event": "auth.login.failed", "email": "o***@a.test", "address": "192.0.2.44", "log_level": "warning"}
    ]
    assert "hunter2" not in repr(logs)
    keys = list(await session.scalars(select(LoginThrottle.key)))
    assert keys and not any("a.test" in k or "192.0.2.44" in k for k in keys)
