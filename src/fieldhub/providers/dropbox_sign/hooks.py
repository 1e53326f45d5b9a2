"""Dropbox Sign connect hooks: the account from GET /v3/account."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    account = (await ctx.get_json(ctx.api_url("/account")))["account"]
    email = account.get("email_address", "")
    return AccountInfo(id=account["account_id"], name=email, details={"email": email})
