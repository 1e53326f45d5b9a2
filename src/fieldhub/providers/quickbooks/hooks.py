"""QuickBooks connect hooks: the company (realm) comes back on the callback; its name from CompanyInfo."""

from __future__ import annotations

import httpx

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext, RevokeContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    realm = ctx.callback_params.get("realmId", "")
    if not realm:
        raise httpx.HTTPError("QuickBooks did not say which company was connected (no realmId)")
    body = await ctx.get_json(ctx.api_url(f"/companyinfo/{realm}", account_id=realm), params={"minorversion": "75"})
    info = body.get("CompanyInfo", {})
    name = info.get("CompanyName") or info.get("LegalName") or f"Company {realm}"
    return AccountInfo(id=realm, name=name, details={"realm_id": realm, "country": info.get("Country", "")})


async def revoke(ctx: RevokeContext, token: str) -> bool:
    """Intuit takes JSON {"token": ...} with the app's Basic credentials, unlike RFC 7009's form body."""
    assert ctx.spec.auth.revoke_url
    response = await ctx.http.post(
        ctx.url(ctx.spec.auth.revoke_url),
        json={"token": token},
        auth=(ctx.client_id, ctx.client_secret),
        headers={"Accept": "application/json"},
    )
    return response.status_code == 200
