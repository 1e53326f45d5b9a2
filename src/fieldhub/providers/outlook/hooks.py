"""Outlook connect hooks: the mailbox from Microsoft Graph /me."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    me = await ctx.get_json(ctx.api_url("/me"))
    email = me.get("mail") or me.get("userPrincipalName") or ""
    return AccountInfo(id=me["id"], name=email or me.get("displayName", ""), details={"email": email})
