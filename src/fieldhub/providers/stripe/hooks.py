"""Stripe connect hooks: the connected account is `stripe_user_id` in the token reply; disconnect deauthorizes."""

from __future__ import annotations

import httpx

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.client import credentials
from fieldhub.hub.oauth.flow import ConnectContext, RevokeContext


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    account_id = str(ctx.token["stripe_user_id"])
    details: dict[str, object] = {"livemode": bool(ctx.token.get("livemode", False))}
    name = account_id
    # Calls for a connected account use the platform's secret key; the account's name is on its profile.
    secret = credentials(ctx.env, ctx.spec).client_secret
    try:
        account = await ctx.get_json(
            ctx.api_url(f"/v1/accounts/{account_id}"), headers={"Authorization": f"Bearer {secret}"}
        )
        name = (account.get("business_profile") or {}).get("name") or account.get("email") or account_id
        details["email"] = str(account.get("email") or "")
    except (httpx.HTTPError, ValueError):
        pass  # the name is a nicety; the account id is what matters
    return AccountInfo(id=account_id, name=name, details=details)


async def revoke(ctx: RevokeContext, token: str) -> bool:
    """Stripe deauthorizes by account, not by token: POST /oauth/deauthorize with client_id and stripe_user_id."""
    assert ctx.spec.auth.revoke_url
    response = await ctx.http.post(
        ctx.url(ctx.spec.auth.revoke_url),
        data={
            "client_id": ctx.client_id,
            "stripe_user_id": ctx.connection.account_id,
            "client_secret": ctx.client_secret,
        },
    )
    return response.status_code == 200
