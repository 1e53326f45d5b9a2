"""Tell the business something needs its attention: an in-app notification today (email comes later)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub.notify.models import Notification
from fieldhub.log import get_logger, scrub_text

log = get_logger(__name__)


async def notify(
    session: AsyncSession, tenant_id: int, kind: str, title: str, body: str = "", link: str = ""
) -> Notification:
    """Record a notification in the caller's transaction; texts pass the redactor so no secret can leak."""
    row = Notification(tenant_id=tenant_id, kind=kind, title=scrub_text(title), body=scrub_text(body), link=link)
    session.add(row)
    await session.flush()
    log.info("notify.created", tenant_id=tenant_id, kind=kind)
    return row


async def unread(session: AsyncSession, tenant_id: int, limit: int = 20) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(Notification.tenant_id == tenant_id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(rows)
