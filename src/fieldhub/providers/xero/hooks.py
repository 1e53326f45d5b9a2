"""Xero connect hooks: the organisation comes from GET /connections (the grant may reach several)."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    tenants = await ctx.get_json(ctx.url("https://api.xero.com/connections"))
    orgs = [t for t in tenants if t.get("tenantType") == "ORGANISATION"] or tenants
    if not orgs:
        raise ValueError("the Xero sign-in reached no organisation")
    # The newest connection is the one just authorised.
    org = max(orgs, key=lambda t: t.get("updatedDateUtc", ""))
    return AccountInfo(
        id=org["tenantId"],
        name=org.get("tenantName", ""),
        details={"tenant_id": org["tenantId"], "connection_id": org["id"]},
    )
