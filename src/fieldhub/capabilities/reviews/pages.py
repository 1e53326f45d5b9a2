"""What a reviews provider's panel adds under its connection: the sync status fields, syncError and needsReauth,
exactly as the connection holds them (the health check and token refresh set them; nothing here guesses)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.spec import ProviderSpec


def sync_status(conn: Any) -> dict[str, Any]:
    needs = conn.status == ConnectionStatus.NEEDS_REAUTH
    return {
        "connection": conn,
        "needs_reauth": needs,
        # The dead grant's words (sync_error) or the health check's "could not tell" (check_error); never both.
        "sync_error": conn.sync_error or conn.check_error or "",
        "checked_at": conn.checked_at,
    }


async def panel(request: Request, ctx: Any, spec: ProviderSpec, conn_panel: Any) -> dict[str, Any] | None:
    views = [v for v in conn_panel.views if v.connection.status != ConnectionStatus.DISCONNECTED]
    if not views:
        return None
    return {"template": "reviews/_status.html", "statuses": [sync_status(v.connection) for v in views]}
