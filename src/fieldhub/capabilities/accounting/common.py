"""What the accounting flows share: a refusal with where to fix it, and Sync Now until given records settle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.accounting import ledgers
from fieldhub.db import utcnow
from fieldhub.hub.connections import mapping
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync import dispatch
from fieldhub.hub.sync.models import LedgerRow, LedgerState

SETTLE_SECONDS = 30.0


class Refused(Exception):
    """A flow can't run (not connected, accounts not mapped, a zero amount): a message and where to fix it."""

    def __init__(self, message: str, link: str = "", link_text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.link = link
        self.link_text = link_text


def require_ready(conn: Connection, doing: str, why_mapping: str) -> None:
    """Connected, with its accounts mapped; else Refused saying which ("… is not connected: reconnect it <doing>.")."""
    if conn.status != ConnectionStatus.CONNECTED:
        raise Refused(f"{ledgers.name_of(conn.provider)} is not connected: reconnect it {doing}.")
    if not mapping.mapping_complete(conn):
        raise Refused(
            f"Map your chart of accounts first: {why_mapping}", mapping.mapping_link(conn), "Open the field mapping"
        )


async def ledger_rows(
    session: AsyncSession, connection_id: int, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], LedgerRow]:
    """This connection's ledger rows for (entity, local id) pairs, freshly read."""
    out: dict[tuple[str, int], LedgerRow] = {}
    wanted: dict[str, list[int]] = {}
    for entity, local_id in keys:
        wanted.setdefault(entity, []).append(local_id)
    for entity, ids in wanted.items():
        for start in range(0, len(ids), 500):
            rows = await session.scalars(
                select(LedgerRow)
                .where(
                    LedgerRow.connection_id == connection_id,
                    LedgerRow.entity == entity,
                    LedgerRow.local_id.in_(ids[start : start + 500]),
                )
                .execution_options(populate_existing=True)
            )
            out.update({(r.entity, r.local_id): r for r in rows})
    return out


async def sync_until_settled(
    env: OAuthEnv,
    session: AsyncSession,
    connection_id: int,
    keys: list[tuple[str, int]],
    *,
    within: float = SETTLE_SECONDS,
    client_options: dict[str, Any] | None = None,
    trigger: str = "manual",
) -> dict[tuple[str, int], LedgerRow]:
    """Sync Now, and wait until these records are synced or failed (or a run left them waiting to retry).

    The run happens here when the connection is free; when a worker already holds it (the commit that
    created the records woke it), this waits for that worker to finish them instead.
    """
    await dispatch.request_sync(session, connection_id, trigger=trigger)
    await session.commit()
    deadline = time.monotonic() + within
    while True:
        ran = await dispatch.run_connection(
            env, connection_id, trigger, None, client_options=dict(client_options or {})
        )
        rows = await ledger_rows(session, connection_id, keys)
        await session.commit()
        unsettled = [r for r in rows.values() if r.state == LedgerState.PENDING]
        if not unsettled or ran is not None and all(r.next_attempt_at > utcnow() for r in unsettled):
            return rows
        if time.monotonic() > deadline:
            return rows
        if ran is None:
            await asyncio.sleep(0.2)
