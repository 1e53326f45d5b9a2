"""Failed sign-ins counted per account and per client address, in the database so every process shares them.

Each rule is a fixed window of failed attempts for one subject (RULES). An attempt inside a full window is
refused before its password is checked, so a refusal costs a read, not an argon2 hash. An attempt is
counted before its password is checked and forgiven if it succeeds: concurrent attempts, in one process or
several, can't all slip under a limit while the hashes run.

Lock-out abuse. Anyone can fail sign-ins on someone else's account, so the account rules only slow an
account down (a few attempts a minute, a few dozen an hour, then the window ends by itself: there is no
lock an administrator has to lift), and they don't apply at all from an address the account signed in from
in the last TRUSTED_FOR: an attacker hammering an owner's account from elsewhere never keeps the owner out
of their usual office or phone network. The address rules apply to every address alike, trusted or not,
and only to that address: hammering from one address blocks that address and no one else. An unknown email
is counted like a known one, so the throttle doesn't tell which accounts exist.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import LoginThrottle


@dataclass(frozen=True)
class Rule:
    scope: Literal["account", "address"]
    limit: int  # failed attempts the window takes
    seconds: int  # the window's length


RULES: tuple[Rule, ...] = (
    Rule("address", 10, 60),
    Rule("address", 100, 3600),
    Rule("account", 5, 60),
    Rule("account", 30, 3600),
)
TRUSTED_FOR = timedelta(days=30)
PRUNE_EVERY_S = 60.0
_pruned_at = 0.0


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """A sign-in as the throttle sees it; emails and addresses are stored only as SHA-256 digests."""

    email: str  # normalised: stripped, lower case
    address: str

    def key(self, rule: Rule) -> str:
        subject = self.email if rule.scope == "account" else self.address
        return f"{rule.scope}:{rule.seconds}:{_digest(subject)}"

    @property
    def trusted_key(self) -> str:
        return f"trusted:{_digest(self.email, self.address)}"


@dataclass
class Verdict:
    wait: int  # seconds until the attempt may be made; 0: go ahead
    trusted: bool  # the account signed in from this address lately: its account rules don't apply


def _seconds(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _applies(rule: Rule, trusted: bool) -> bool:
    return not (trusted and rule.scope == "account")


async def check(session: AsyncSession, attempt: Attempt, now: datetime) -> Verdict:
    """Whether the attempt may go ahead (a read: refusals under attack write nothing)."""
    rules = {attempt.key(rule): rule for rule in RULES}
    rows = await session.execute(
        select(LoginThrottle.key, LoginThrottle.failures, LoginThrottle.window_ends_at).where(
            LoginThrottle.key.in_([*rules, attempt.trusted_key]), LoginThrottle.window_ends_at > now
        )
    )
    live = {key: (failures, ends) for key, failures, ends in rows}
    trusted = attempt.trusted_key in live
    waits = [
        _seconds(ends, now)
        for key, (failures, ends) in live.items()
        if key in rules and failures >= rules[key].limit and _applies(rules[key], trusted)
    ]
    return Verdict(max(waits, default=0), trusted)


def _upsert(dialect: str, key: str, now: datetime, ends: datetime) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    ended = LoginThrottle.window_ends_at <= now  # the stored row's window, in ON CONFLICT DO UPDATE
    return (
        insert(LoginThrottle)
        .values(key=key, failures=1, window_ends_at=ends)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "failures": case((ended, 1), else_=LoginThrottle.failures + 1),
                "window_ends_at": case((ended, ends), else_=LoginThrottle.window_ends_at),
            },
        )
        .returning(LoginThrottle.failures, LoginThrottle.window_ends_at)
    )


async def count(session: AsyncSession, attempt: Attempt, now: datetime, *, trusted: bool) -> int:
    """Counts the attempt as a failure in each of its windows, atomically; the seconds to wait if that took
    one past its limit (another attempt got there first: this one is refused too), else 0. The caller
    commits before checking the password, so every process sees the count while the hash runs."""
    await _prune(session, now)
    dialect = session.get_bind().dialect.name
    wait = 0
    for rule in RULES:
        ends = now + timedelta(seconds=rule.seconds)
        failures, window_ends_at = (await session.execute(_upsert(dialect, attempt.key(rule), now, ends))).one()
        if failures > rule.limit and _applies(rule, trusted):
            wait = max(wait, _seconds(window_ends_at, now))
    return wait


async def forgive(session: AsyncSession, attempt: Attempt, now: datetime) -> None:
    """A counted attempt succeeded: it was no failure, and the account now trusts this address."""
    await session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key.in_([attempt.key(rule) for rule in RULES]), LoginThrottle.failures > 0)
        .values(failures=LoginThrottle.failures - 1)
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    until = now + TRUSTED_FOR
    await session.execute(
        insert(LoginThrottle)
        .values(key=attempt.trusted_key, failures=0, window_ends_at=until)
        .on_conflict_do_update(index_elements=[LoginThrottle.key], set_={"window_ends_at": until})
    )


async def _prune(session: AsyncSession, now: datetime) -> None:
    """Ended windows go, at most once a minute per process (a spray of random emails leaves one row each)."""
    global _pruned_at
    if time.monotonic() - _pruned_at < PRUNE_EVERY_S:
        return
    _pruned_at = time.monotonic()
    await session.execute(delete(LoginThrottle).where(LoginThrottle.window_ends_at <= now))
