"""Xero connect hooks: the organisation comes from GET /connections (the grant may reach several)."""

from __future__ import annotations

import base64
import json

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext


def auth_event(access_token: str) -> str:
    """The consent this token came from: Xero's access tokens are JWTs naming it (authentication_event_id).
    Read, not verified: the token came straight from Xero's token endpoint, and only picks among our tenants."""
    try:
        claims = access_token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    except (IndexError, ValueError):
        return ""
    return str(payload.get("authentication_event_id", "")) if isinstance(payload, dict) else ""


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    # Xero's way to know what this consent connected: /connections?authEventId=<the token's auth event>.
    event = auth_event(ctx.access_token)
    url = ctx.url("https://api.xero.com/connections")
    tenants = await ctx.get_json(url, params={"authEventId": event}) if event else []
    tenants = tenants or await ctx.get_json(url)
    orgs = [t for t in tenants if t.get("tenantType") == "ORGANISATION"] or tenants
    if not orgs:
        raise ValueError("the Xero sign-in reached no organisation")
    # The newest connection is the one just authorised (when the token names no auth event).
    org = max(orgs, key=lambda t: t.get("updatedDateUtc", ""))
    return AccountInfo(
        id=org["tenantId"],
        name=org.get("tenantName", ""),
        details={"tenant_id": org["tenantId"], "connection_id": org["id"]},
    )
