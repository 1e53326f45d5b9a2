"""The connection status the pages show for a provider or a hub card: the one place they ask.

`connection_status` answers from the tenant's connection rows (hub/connections); `card_status` folds a
card's providers into one line for the hub grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub import registry
from fieldhub.hub.connections.status import summary

Tone = Literal["grey", "green", "blue", "yellow", "red"]


@dataclass(frozen=True)
class ConnectionStatus:
    connected: bool
    label: str
    tone: Tone


NOT_CONNECTED = ConnectionStatus(connected=False, label="Not connected", tone="grey")


async def connection_status(db: AsyncSession, tenant_id: int, provider_key: str) -> ConnectionStatus:
    """How one business's link to one provider stands (unknown keys raise registry.UnknownProvider)."""
    found = await summary(db, tenant_id, provider_key)
    return ConnectionStatus(connected=found.connected, label=found.label, tone=_tone(found.tone))


def _tone(tone: str) -> Tone:
    return tone if tone in ("grey", "green", "blue", "yellow", "red") else "grey"  # type: ignore[return-value]


def combine(statuses: Iterable[ConnectionStatus]) -> ConnectionStatus:
    """A card's status from its providers': one provider speaks for itself; several are counted."""
    statuses = list(statuses)
    if len(statuses) == 1:
        return statuses[0]
    connected = [s for s in statuses if s.connected]
    if not connected:
        return NOT_CONNECTED
    worst = next((s for s in connected if s.tone in ("red", "yellow")), None)
    if worst is not None:
        return ConnectionStatus(connected=True, label=worst.label, tone=worst.tone)
    return ConnectionStatus(connected=True, label=f"{len(connected)} of {len(statuses)} connected", tone="green")


async def card_status(db: AsyncSession, tenant_id: int, card: registry.HubCard) -> ConnectionStatus:
    return combine([await connection_status(db, tenant_id, p.key) for p in card.providers])
