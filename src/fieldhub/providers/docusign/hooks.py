"""DocuSign connect hooks: the default account (and its API base URI) from /oauth/userinfo."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    info = await ctx.get_json(ctx.url("https://account.docusign.com/oauth/userinfo"))
    accounts = info.get("accounts", [])
    account = next((a for a in accounts if a.get("is_default")), accounts[0] if accounts else None)
    if account is None:
        raise ValueError("the DocuSign user has no account")
    return AccountInfo(
        id=account["account_id"],
        name=account.get("account_name", ""),
        details={"email": info.get("email", ""), "base_uri": account.get("base_uri", "")},
    )
