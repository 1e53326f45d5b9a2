"""Accounts: passwords (argon2), login sessions, personal API tokens. The only writer of these tables."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import ApiToken, LoginSession, Role, Tenant, User
from fieldhub.db import utcnow

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = _hasher.hash("not-a-password")
API_TOKEN_PREFIX = "fhp_"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def use_hasher(hasher: PasswordHasher) -> None:
    """Swap the argon2 parameters (the test suite uses cheap ones; production keeps argon2's defaults)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


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
        password_hash=hash_password(password),
        **({"color": color} if color else {}),
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.email == email.strip().lower(), User.active))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


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


async def create_api_token(session: AsyncSession, user: User, name: str = "") -> str:
    """Returns the token value; only its hash is stored."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, prefix=token[:10], token_hash=sha256(token), created_at=utcnow()))
    await session.flush()
    return token


async def resolve_api_token(session: AsyncSession, token: str) -> User | None:
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == sha256(token), ApiToken.revoked_at.is_(None))
    )
    if row is None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    return row.user
