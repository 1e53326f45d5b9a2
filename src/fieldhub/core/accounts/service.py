"""Accounts: passwords (argon2), login sessions, personal API tokens. The only writer of these tables."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts import throttle
from fieldhub.core.accounts.models import ApiToken, LoginSession, Role, Tenant, User
from fieldhub.db import utcnow
from fieldhub.log import get_logger

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = _hasher.hash("not-a-password")
API_TOKEN_PREFIX = "fhp_"
# argon2 takes ~100 ms of CPU per check and lets go of the GIL, so checks run in a pool of their own
# threads while the event loop keeps serving pages: at most one check per core at a time, further sign-ins
# wait their turn in the pool's queue instead of piling up threads that fight the loop (and each other) for
# the cores. argon2 spreads each check over `parallelism` threads of its own, started from the pool's
# thread: these run at a lower priority (HASH_NICE, Linux keeps it per thread and new threads inherit it),
# so whenever the loop has work the kernel gives it the core first.
HASH_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
HASH_NICE = 10
T = TypeVar("T")


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not on every platform: then argon2 runs at the loop's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


_hash_pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="argon2", initializer=_lower_priority)
log = get_logger(__name__)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def use_hasher(hasher: PasswordHasher) -> None:
    """Swap the argon2 parameters (the test suite uses cheap ones; production keeps argon2's defaults)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def _hashing(work: Callable[[], T]) -> T:
    """`work` (argon2) in the hashing pool, waiting for a thread if all are busy."""
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, work)


async def create_tenant(session: AsyncSession, *, name: str, slug: str, **fields: str) -> Tenant:
    tenant = Tenant(name=name, slug=slug, **fields)
    session.add(tenant)
    await session.flush()
    return tenant


async def create_user(
    session: AsyncSession,
    *,
    tenant: Tenant,
    email: str,
    name: str,
    role: Role,
    password: str,
    color: str = "",
) -> User:
    user = User(
        tenant_id=tenant.id,
        email=email.strip().lower(),
        name=name,
        role=role,
        password_hash=await _hashing(lambda: hash_password(password)),
        **({"color": color} if color else {}),
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.email == email.strip().lower(), User.active))
    stored = user.password_hash if user else _DUMMY_HASH

    def verify() -> bool:
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    return user if await _hashing(verify) else None


@dataclass
class SignIn:
    user: User | None  # None: refused
    retry_after: int = 0  # seconds, when the throttle refused it without checking the password


def masked(email: str) -> str:
    """An email as a log may show it: "o***@example.com"."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}"


async def sign_in(
    session: AsyncSession, email: str, password: str, address: str, *, now: datetime | None = None
) -> SignIn:
    """A password sign-in, throttled per account and per client address (core/accounts/throttle.py).

    Commits `session` once before the password is checked: the attempt's count must be seen by every
    process while the hash runs, and no lock may be held during it.
    """
    now = now or utcnow()
    attempt = throttle.Attempt(email.strip().lower(), address)
    verdict = await throttle.check(session, attempt, now)
    if not verdict.wait:
        verdict.wait = await throttle.count(session, attempt, now, trusted=verdict.trusted)
        await session.commit()
    if verdict.wait:
        log.warning("auth.login.throttled", email=masked(attempt.email), address=address, retry_after=verdict.wait)
        return SignIn(None, verdict.wait)
    user = await authenticate(session, email, password)
    if user is None:
        log.warning("auth.login.failed", email=masked(attempt.email), address=address)
        return SignIn(None)
    await throttle.forgive(session, attempt, now)
    return SignIn(user)


async def start_session(session: AsyncSession, user: User, days: int) -> tuple[str, LoginSession]:
    """Returns the cookie value (shown once) and the stored session."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = LoginSession(
        user_id=user.id,
        token_hash=sha256(token),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    await session.flush()
    return token, row


async def resolve_session(session: AsyncSession, token: str) -> LoginSession | None:
    if not token:
        return None
    row = await session.scalar(select(LoginSession).where(LoginSession.token_hash == sha256(token)))
    if row is None or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.token_hash == sha256(token)))


# A new token's lifetime when none is chosen, and the choices the profile page offers (days).
API_TOKEN_DAYS = 90
API_TOKEN_DAY_CHOICES = (7, 30, 90, 365)
API_TOKEN_MAX_DAYS = 3650
# last_used_at is written when it is older than this: a token's requests cost no write each, only one a minute.
LAST_USED_EVERY = timedelta(minutes=1)
TOKEN_REQUIRED = "A valid API token is required"


async def create_api_token(
    session: AsyncSession, user: User, name: str = "", *, days: int = API_TOKEN_DAYS, now: datetime | None = None
) -> str:
    """Returns the token value (shown once); only its SHA-256 and a recognisable prefix are stored.

    It works for `days` days (1 to API_TOKEN_MAX_DAYS): every token expires."""
    if not 1 <= days <= API_TOKEN_MAX_DAYS:
        raise ValueError(f"A token lasts 1 to {API_TOKEN_MAX_DAYS} days.")
    now = now or utcnow()
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            name=name.strip()[:100],
            prefix=token[:10],
            token_hash=sha256(token),
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    await session.flush()
    log.info("auth.token.created", user_id=user.id, prefix=token[:10], days=days)
    return token


@dataclass
class TokenCheck:
    """Who an API token acts as, or why it is refused (the 401's words)."""

    user: User | None
    refusal: str = ""


async def check_api_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> TokenCheck:
    """The user behind a token that is known, not revoked, not expired and whose user is active.

    An expired or revoked token is told so (only its holder can ask). The last use is noted on the row at most
    once a minute (LAST_USED_EVERY), in the caller's transaction."""
    if not token.startswith(API_TOKEN_PREFIX):
        return TokenCheck(None, TOKEN_REQUIRED)
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(token)))
    if row is None or not row.user.active:
        return TokenCheck(None, TOKEN_REQUIRED)
    now = now or utcnow()
    if row.revoked_at is not None:
        return TokenCheck(None, f"This API token ({row.prefix}…) was revoked. Create a new one under your profile.")
    if row.expires_at <= now:
        return TokenCheck(
            None,
            f"This API token ({row.prefix}…) expired on {row.expires_at:%Y-%m-%d %H:%M} UTC."
            " Create a new one under your profile.",
        )
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
    return TokenCheck(row.user)


async def resolve_api_token(session: AsyncSession, token: str) -> User | None:
    return (await check_api_token(session, token)).user


async def api_tokens(session: AsyncSession, *, user_id: int | None = None) -> list[ApiToken]:
    """Tokens newest first: one user's, or (the CLI) every one."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(await session.scalars(query))


def token_state(row: ApiToken, now: datetime | None = None) -> str:
    """ "active", "expired" or "revoked", as a list shows it."""
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= (now or utcnow()) else "active"


async def revoke_api_token(
    session: AsyncSession, token_id: int, *, user_id: int | None = None, now: datetime | None = None
) -> ApiToken | None:
    """Revoke one token (only `user_id`'s when given: a page revokes its own user's). Revoking twice keeps the
    first time. None when there is no such token (for that user)."""
    row = await session.get(ApiToken, token_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        return None
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        await session.flush()
        log.info("auth.token.revoked", user_id=row.user_id, prefix=row.prefix)
    return row
