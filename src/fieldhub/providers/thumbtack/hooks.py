"""Thumbtack connect hooks: the business from GET /api/v4/businesses, then its webhook for leads and messages."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.hub.connections.models import Connection
from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.flow import ConnectContext
from fieldhub.providers.thumbtack import leads


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    """The business the user picked at Thumbtack's consent (the grant reaches that one; the first if several)."""
    businesses = (await ctx.get_json(ctx.api_url("/businesses")))["data"]
    if not businesses:
        raise ValueError("the Thumbtack user has no business")
    first = businesses[0]
    return AccountInfo(id=str(first["businessID"]), name=first.get("name", ""))


async def on_connected(env: OAuthEnv, session: AsyncSession, conn: Connection) -> None:
    await leads.setup(env, session, conn)
