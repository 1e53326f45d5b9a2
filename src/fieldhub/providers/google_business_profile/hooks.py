"""Google connect hooks: the account is the signed-in Google user, by the email userinfo gives."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    info = await ctx.get_json(ctx.url("https://openidconnect.googleapis.com/v1/userinfo"))
    return AccountInfo(id=info["sub"], name=info.get("email", ""), details={"email": info.get("email", "")})
