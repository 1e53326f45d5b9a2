"""Tell the business something needs its attention: an in-app notification, and email to users who opted in."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Role, User
from fieldhub.db import utcnow
from fieldhub.hub.notify.models import Notification, NotificationPreference, OutboundEmail
from fieldhub.log import get_logger, scrub_text

log = get_logger(__name__)

# The alert kinds a user can choose to receive by email, in words.
KINDS: dict[str, str] = {
    "connection.needs_reauth": "A connection stopped working and needs to be reconnected",
    "sync.failed": "Records failed to sync (each one is a transaction missing from the other side)",
    "voice.message": "A caller left a message with the phone assistant",
    "lead.new": "A new lead arrived in the Leads inbox",
}
MAIL_KEY = "fieldhub.notify.mail"


def default_email_kinds(role: str) -> list[str]:
    """Owners and admins hear about every alert by email until they say otherwise; other roles don't."""
    return list(KINDS) if Role(role).manages_integrations else []


async def email_kinds_for(session: AsyncSession, user: User) -> list[str]:
    pref = await session.scalar(select(NotificationPreference).where(NotificationPreference.user_id == user.id))
    return list(pref.email_kinds) if pref is not None else default_email_kinds(user.role)


async def save_email_kinds(session: AsyncSession, user: User, kinds: list[str]) -> list[str]:
    chosen = [k for k in KINDS if k in set(kinds)]
    pref = await session.scalar(select(NotificationPreference).where(NotificationPreference.user_id == user.id))
    if pref is None:
        pref = NotificationPreference(tenant_id=user.tenant_id, user_id=user.id)
        session.add(pref)
    pref.email_kinds = chosen
    await session.flush()
    return chosen


async def _queue_emails(session: AsyncSession, note: Notification) -> int:
    users = await session.scalars(select(User).where(User.tenant_id == note.tenant_id, User.active.is_(True)))
    queued = 0
    for user in users:
        if not user.email or note.kind not in await email_kinds_for(session, user):
            continue
        body = note.body + (f"\n\nFix it here: {note.link}" if note.link else "")
        session.add(
            OutboundEmail(
                tenant_id=note.tenant_id,
                user_id=user.id,
                notification_id=note.id,
                to_address=user.email,
                kind=note.kind,
                subject=note.title,
                body=body,
            )
        )
        queued += 1
    if queued:
        # The mail pump is woken after this transaction commits (hub.notify.email).
        session.sync_session.info[MAIL_KEY] = True
    return queued


async def notify(
    session: AsyncSession, tenant_id: int, kind: str, title: str, body: str = "", link: str = ""
) -> Notification:
    """Record a notification in the caller's transaction and queue email for users who want this kind.

    Texts pass the redactor so no secret can leak.
    """
    row = Notification(tenant_id=tenant_id, kind=kind, title=scrub_text(title), body=scrub_text(body), link=link)
    session.add(row)
    await session.flush()
    emails = await _queue_emails(session, row)
    await session.flush()
    log.info("notify.created", tenant_id=tenant_id, kind=kind, emails=emails)
    return row


async def unread(session: AsyncSession, tenant_id: int, limit: int = 20) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(Notification.tenant_id == tenant_id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(rows)


async def recent(session: AsyncSession, tenant_id: int, limit: int = 100) -> list[Notification]:
    rows = await session.scalars(
        select(Notification).where(Notification.tenant_id == tenant_id).order_by(Notification.id.desc()).limit(limit)
    )
    return list(rows)


async def mark_read(session: AsyncSession, tenant_id: int, notification_id: int | None = None) -> int:
    """Mark one notification (or all of the tenant's) read; returns how many changed."""
    stmt = update(Notification).where(Notification.tenant_id == tenant_id, Notification.read_at.is_(None))
    if notification_id is not None:
        stmt = stmt.where(Notification.id == notification_id)
    result = await session.execute(stmt.values(read_at=utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
