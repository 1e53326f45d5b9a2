"""The dashboard banner: connections that need a person now (paused for a sign-in, or holding failed records)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub import features, registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.service import settings_link
from fieldhub.hub.sync.models import LedgerRow, LedgerState


@dataclass(frozen=True)
class Alert:
    message: str
    link: str
    action: str


async def banner_alerts(session: AsyncSession, tenant_id: int) -> list[Alert]:
    conns = list(
        await session.scalars(
            select(Connection)
            .where(Connection.tenant_id == tenant_id, Connection.status != ConnectionStatus.DISCONNECTED)
            .order_by(Connection.id)
        )
    )
    if not conns:
        return []
    failed = dict(
        (
            await session.execute(
                select(LedgerRow.connection_id, func.count())
                .where(LedgerRow.tenant_id == tenant_id, LedgerRow.state == LedgerState.FAILED)
                .group_by(LedgerRow.connection_id)
            )
        ).all()
    )
    alerts = []
    for conn in conns:
        try:
            name = registry.get(conn.provider).name
        except registry.UnknownProvider:
            continue
        base = settings_link(conn.provider)
        if conn.status in (ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.ERROR):
            # "Syncing is paused" only where something syncs: a provider that only connects has nothing to pause.
            paused = ": syncing is paused" if features.get(conn.provider).syncs else ""
            alerts.append(Alert(f"{name} ({conn.account_name}) needs to be reconnected{paused}.", base, "Reconnect"))
        if failed.get(conn.id):
            n = failed[conn.id]
            alerts.append(
                Alert(
                    f"{n} record{'' if n == 1 else 's'} failed to sync to {name}: your books are off until "
                    f"{'it is' if n == 1 else 'they are'} fixed.",
                    f"{base}/{conn.id}/records?state=failed",
                    "See what failed",
                )
            )
    return alerts
