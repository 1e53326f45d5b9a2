"""FreshBooks connect hooks: the business and its account id come from /auth/api/v1/users/me."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    me = (await ctx.get_json(ctx.url("https://api.freshbooks.com/auth/api/v1/users/me")))["response"]
    business = me["business_memberships"][0]["business"]
    return AccountInfo(
        id=str(business["id"]),
        name=business.get("name", ""),
        details={"account_id": business.get("account_id", ""), "email": me.get("email", "")},
    )
