"""Thumbtack connect hooks: the business from GET /api/v4/businesses (the first the grant reaches)."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    businesses = (await ctx.get_json(ctx.api_url("/businesses")))["data"]
    if not businesses:
        raise ValueError("the Thumbtack user has no business")
    first = businesses[0]
    return AccountInfo(id=str(first["businessID"]), name=first.get("name", ""))
