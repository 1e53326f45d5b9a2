"""What the Voice AI panel adds under its connection: the number, the agent, the assistant's hours, a test call."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fieldhub.capabilities.voice import assistant, service
from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.spec import ProviderSpec

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


async def panel(request: Request, ctx: Any, spec: ProviderSpec, conn_panel: Any) -> dict[str, Any] | None:
    views = [v for v in conn_panel.views if v.connection.status != ConnectionStatus.DISCONNECTED]
    if not views:
        return None
    connections = []
    for view in views:
        conn = view.connection
        settings = conn.settings or {}
        connections.append(
            {
                "connection": conn,
                "agent": settings.get("agent") or {},
                "hours": assistant.Hours.from_settings(settings.get("assistant")),
                "greeting": (settings.get("assistant") or {}).get("greeting", ""),
            }
        )
    return {
        "template": "voice/_panel.html",
        "connections": connections,
        "days": DAYS,
        "calls": await service.count_calls(ctx.db, ctx.tenant_id),
        "msg": request.query_params.get("voice", ""),
    }
