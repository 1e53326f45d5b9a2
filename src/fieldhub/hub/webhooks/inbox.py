"""The durable inbox: store a verified event once, process it from the inbox, sweep what a crash left behind.

A provider's `providers/<key>/webhooks.py` supplies three functions:

- `verify(headers, body, secret) -> bool`: the signature, checked before anything is read or written
  (`headers` keys are lower case; `body` is the raw bytes);
- `parse(payload) -> InboundEvent`: the event's id, type and account (ValueError when malformed);
- `handle(ctx: WebhookContext) -> bool`: act on the event inside `ctx.session`; True if it changed
  something, False if there was nothing to do (the row is then `ignored`). It must be idempotent:
  the same event may be processed again after a crash, and providers deliver more than once.

The hub reads the body before `parse` sees it (`read_event`): strict UTF-8, JSON nested at most
MAX_DEPTH deep, no NUL or lone surrogate in any string, and an event id that fits the inbox's column.
Anything else is `Malformed` (the route answers 400 and writes nothing), so an odd body a valid
signature covers can't fail the insert, and the provider doesn't retry it for days.

Processing runs right after the insert (a background task of the webhook route) and again from
`sweep`, which picks up rows left `received` by a crash and retries `failed` ones a few times. One
connection's events are processed one at a time (a lock on its row), so two deliveries about the
same payment can't race each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.sync.engine import LeaseHeld
from fieldhub.hub.webhooks.models import InboxState, RemoteLink, WebhookInbox
from fieldhub.log import get_logger

if TYPE_CHECKING:
    from fieldhub.hub.oauth.env import OAuthEnv

log = get_logger(__name__)
MAX_DEPTH = 64  # providers' events nest a handful of levels; json itself gives up near 1,000 with RecursionError
MAX_EVENT_ID = WebhookInbox.__table__.c.event_id.type.length  # type: ignore[attr-defined]
MAX_ATTEMPTS = 5
STALE_AFTER = timedelta(seconds=30)  # a `received` row this old was left by a crash, not by a task in flight
KEPT_HEADERS = ("content-type", "user-agent", "request-id")


class Deferred(Exception):  # noqa: N818 - a decision put off, not an error
    """Raised by a handler that can't decide about the event yet (a notice that may echo a create of ours whose
    reply is not in): nothing is written, the row stays `received`, and the sweep processes it again later."""


class Malformed(ValueError):
    """A verified body that is not an event the inbox can keep; the message says why, in plain words."""


@dataclass(frozen=True)
class InboundEvent:
    id: str
    type: str
    account: str | None  # the provider account the event is about, when it says
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class WebhookContext:
    """What a provider's `handle` gets: the transaction, the connection (if known), and how to call the provider."""

    session: AsyncSession
    env: OAuthEnv
    provider: str
    event: InboundEvent
    connection: Connection | None
    received_at: datetime | None = None  # when the inbox stored the event (a handler may defer it a while)

    @property
    def tenant_id(self) -> int | None:
        return self.connection.tenant_id if self.connection else None

    async def link(self, kind: str, remote_id: str) -> RemoteLink | None:
        return await find_link(self.session, self.provider, kind, remote_id)

    async def add_link(self, kind: str, remote_id: str, local_entity: str, local_id: int) -> RemoteLink:
        assert self.connection is not None
        row = RemoteLink(
            tenant_id=self.connection.tenant_id,
            provider=self.provider,
            kind=kind,
            remote_id=remote_id,
            local_entity=local_entity,
            local_id=local_id,
        )
        self.session.add(row)
        await self.session.flush()  # the unique constraint speaks now, inside the handler's transaction
        return row


async def find_link(session: AsyncSession, provider: str, kind: str, remote_id: str) -> RemoteLink | None:
    return await session.scalar(
        select(RemoteLink).where(
            RemoteLink.provider == provider, RemoteLink.kind == kind, RemoteLink.remote_id == remote_id
        )
    )


def webhook_module(provider: str) -> Any:
    """The provider's webhooks module, or None if it takes no webhooks (or there is no such provider)."""
    try:
        spec = registry.get(provider)
    except registry.UnknownProvider:
        return None
    if spec.webhooks is None:
        return None
    module = registry.import_module(provider, "webhooks")
    if module is None or not all(hasattr(module, name) for name in ("verify", "parse", "handle")):
        return None
    return module


def _check_tree(payload: Any) -> None:
    """Depth and strings of a parsed body, walked without recursion (the point is that recursion can't cope)."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise Malformed(f"nested more than {MAX_DEPTH} levels deep")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        # "\u0000" and "\ud800" are valid JSON escapes, but neither can be stored as text on PostgreSQL.
        elif isinstance(value, str) and ("\x00" in value or (not value.isascii() and not _encodes(value))):
            raise Malformed("a string holds a NUL or a lone surrogate")


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_event(module: Any, body: bytes) -> tuple[str, InboundEvent]:
    """The verified body as text and the event it holds, or Malformed. Nothing is written either way."""
    try:
        text = body.decode("utf-8")  # strict: UTF-16, Latin-1 and UTF-8-encoded surrogates are refused
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise Malformed("nested too deep") from None
    except ValueError:
        raise Malformed("the body is not JSON") from None
    _check_tree(payload)
    try:
        event = module.parse(payload)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        raise Malformed("not an event of this provider") from None
    if not event.id or len(event.id) > MAX_EVENT_ID:
        raise Malformed(f"the event id is empty or longer than {MAX_EVENT_ID} characters")
    return text, event


def secret_for(env: OAuthEnv, provider: str) -> str:
    spec = registry.get(provider)
    assert spec.webhooks is not None
    value = getattr(env.settings.provider(provider), spec.webhooks.secret_setting)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


async def delivery_secret(env: OAuthEnv, provider: str, headers: dict[str, str], body: bytes) -> str:
    """What a delivery's signature is checked against: the provider's own per-connection secret where its
    webhooks.py keeps one (`delivery_secret(env, headers, body)`: credentials fieldhub generated for that
    connection's subscription, "" or None when the delivery names none it knows), else the configured one."""
    own = getattr(webhook_module(provider), "delivery_secret", None)
    if own is not None:
        return await own(env, headers, body) or ""
    return secret_for(env, provider)


# Whose an account's events are, best first: the business holding it (connected, then paused), then the
# one that connected it last (a disconnected account's late events, such as an ACH payment settling).
_OWNER_ORDER = {ConnectionStatus.CONNECTED: 0, ConnectionStatus.NEEDS_REAUTH: 1, ConnectionStatus.ERROR: 2}


async def connection_for(session: AsyncSession, provider: str, account: str | None) -> Connection | None:
    """The one connection an event's account belongs to (see _OWNER_ORDER); None for an account nobody connected.

    An account a business owns is held by one connection at most (uq_connections_provider_held_account), so its
    events can't reach another business that connected it too.
    """
    if not account:
        return None
    rows = list(
        await session.scalars(
            select(Connection).where(Connection.provider == provider, Connection.account_id == account)
        )
    )
    if not rows:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    return min(
        rows,
        key=lambda c: (
            _OWNER_ORDER.get(ConnectionStatus(c.status), 3),
            not c.owns_account,
            -(c.connected_at or epoch).timestamp(),
            -c.id,
        ),
    )


async def store(
    session: AsyncSession, provider: str, event: InboundEvent, body: str, headers: dict[str, str]
) -> WebhookInbox | None:
    """Insert the event (as `read_event` gave it) into the inbox; None when its id is already there (a duplicate)."""
    existing = await session.scalar(
        select(WebhookInbox.id).where(WebhookInbox.provider == provider, WebhookInbox.event_id == event.id)
    )
    if existing is not None:
        return None
    conn = await connection_for(session, provider, event.account)
    row = WebhookInbox(
        provider=provider,
        event_id=event.id,
        event_type=event.type[:120],
        tenant_id=conn.tenant_id if conn else None,
        connection_id=conn.id if conn else None,
        received_at=utcnow(),
        body=body,
        headers={k: headers[k] for k in KEPT_HEADERS if k in headers},
        state=InboxState.RECEIVED,
        attempts=0,
        error="",
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None  # the same event arrived twice at once; the other insert won
    return row


async def _lock(session: AsyncSession, row: WebhookInbox) -> WebhookInbox | None:
    """Take the row (and its connection) for this transaction; re-read it, another processor may have finished it."""
    await session.execute(
        update(WebhookInbox)
        .where(WebhookInbox.id == row.id)
        .values(attempts=WebhookInbox.attempts)
        .execution_options(synchronize_session=False)
    )
    fresh = await session.scalar(
        select(WebhookInbox).where(WebhookInbox.id == row.id).execution_options(populate_existing=True)
    )
    if fresh is not None and fresh.connection_id is not None:
        await session.execute(
            update(Connection)
            .where(Connection.id == fresh.connection_id)
            .values(updated_at=Connection.updated_at)
            .execution_options(synchronize_session=False)
        )
    return fresh


async def process(env: OAuthEnv, inbox_id: int) -> InboxState | None:
    """Process one inbox row in its own transaction; a failure is recorded on the row, never raised."""
    async with env.sessionmaker() as session:
        row = await session.get(WebhookInbox, inbox_id)
        if row is None:
            return None
        row = await _lock(session, row)
        if row is None or row.state in (InboxState.PROCESSED, InboxState.IGNORED):
            done = InboxState(row.state) if row else None
            await session.rollback()
            return done
        module = webhook_module(row.provider)
        try:
            if module is None:
                raise LookupError(f"no webhook handler for {row.provider}")
            event = module.parse(json.loads(row.body))
            conn = await session.get(Connection, row.connection_id) if row.connection_id else None
            if conn is None:
                conn = await connection_for(session, row.provider, event.account)
                if conn is not None:
                    row.tenant_id, row.connection_id = conn.tenant_id, conn.id
            ctx = WebhookContext(
                session=session,
                env=env,
                provider=row.provider,
                event=event,
                connection=conn,
                received_at=row.received_at,
            )
            changed = await module.handle(ctx)
            row.state = InboxState.PROCESSED if changed else InboxState.IGNORED
            row.attempts += 1
            row.error = ""
            row.processed_at = utcnow()
            await session.commit()
            log.info("webhook.processed", provider=row.provider, event_type=row.event_type, state=str(row.state))
            return InboxState(row.state)
        except (LeaseHeld, Deferred) as exc:
            # The connection is syncing, or the handler can't decide yet: not a failure. The row stays
            # `received` for the sweep.
            await session.rollback()  # expires `row`: nothing of it is read after this
            log.info("webhook.deferred", inbox_id=inbox_id, why=type(exc).__name__)
            return InboxState.RECEIVED
        except Exception as exc:  # noqa: BLE001 - any failure is kept on the row for the sweep and the owner
            await session.rollback()
            error = f"{type(exc).__name__}: {exc}"[:2000]
            await session.execute(
                update(WebhookInbox)
                .where(WebhookInbox.id == inbox_id)
                .values(state=InboxState.FAILED, attempts=WebhookInbox.attempts + 1, error=error)
            )
            await session.commit()
            log.warning("webhook.failed", inbox_id=inbox_id, error=type(exc).__name__)
            return InboxState.FAILED


async def sweep(env: OAuthEnv, *, stale_after: timedelta = STALE_AFTER, limit: int = 100) -> int:
    """Process rows a crash left `received` and retry `failed` ones (up to MAX_ATTEMPTS). Returns how many ran."""
    cutoff = utcnow() - stale_after
    async with env.sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(WebhookInbox.id)
                .where(
                    or_(
                        (WebhookInbox.state == InboxState.RECEIVED) & (WebhookInbox.received_at <= cutoff),
                        (WebhookInbox.state == InboxState.FAILED) & (WebhookInbox.attempts < MAX_ATTEMPTS),
                    )
                )
                .order_by(WebhookInbox.received_at, WebhookInbox.id)
                .limit(limit)
            )
        )
    for inbox_id in ids:
        await process(env, inbox_id)
    return len(ids)
