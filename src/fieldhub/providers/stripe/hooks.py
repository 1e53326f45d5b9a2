"""Stripe connect hooks: OAuth keeps `stripe_user_id`; Account Links onboard a new account; disconnect deauthorizes."""

from __future__ import annotations

import httpx
import stripe

from fieldhub.hub.connections.models import Connection
from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.errors import NeedsReauth, RetryLater
from fieldhub.hub.oauth.client import credentials
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.flow import ConnectContext, RevokeContext
from fieldhub.providers.stripe import actions


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
        summary = actions.summary_of(account)
        name = str(summary.pop("name"))
        details.update(summary)
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


async def check_health(env: OAuthEnv, conn: Connection) -> None:
    """The health check's cheap call: read the connected account with the platform key, as every call for it goes.

    Stripe refuses a platform whose access the account removed (401/403, or the account no longer found for
    it): that is a dead grant. A network error, a 429 or a 5xx is not.
    """
    try:
        await actions.account_summary(env, conn.account_id)
    except (stripe.AuthenticationError, stripe.PermissionError) as e:
        raise NeedsReauth(f"Stripe refused access to the account ({type(e).__name__})", status=e.http_status) from None
    except stripe.InvalidRequestError as e:
        if e.http_status in (403, 404):
            raise NeedsReauth("Stripe no longer lets fieldhub act for this account", status=e.http_status) from None
        raise RetryLater(f"Stripe refused the health check ({e.http_status})", status=e.http_status) from None
    except stripe.StripeError as e:
        raise RetryLater(
            f"Stripe could not answer the health check ({type(e).__name__})", status=e.http_status
        ) from None


async def onboard(env: OAuthEnv, *, email: str, business_name: str, refresh_url: str, return_url: str):  # noqa: ANN201
    """A business without a Stripe account: create one (Standard) and send the owner to Stripe's hosted onboarding.

    Returns (AccountInfo, onboarding URL). The account id is all the hub keeps: calls act for it with the
    platform key and a Stripe-Account header, so it is stored as the connection's credential.
    """
    account_id = await actions.create_account(env, email=email, business_name=business_name)
    url = await actions.onboarding_link(env, account_id, refresh_url=refresh_url, return_url=return_url)
    details = await describe(env, account_id)
    return details, url


async def onboarding_link(env: OAuthEnv, conn: Connection, *, refresh_url: str, return_url: str) -> str:
    """A fresh link when the last one expired or was used (Stripe sends the owner to refresh_url then)."""
    return await actions.onboarding_link(env, conn.account_id, refresh_url=refresh_url, return_url=return_url)


async def describe(env: OAuthEnv, account_id: str) -> AccountInfo:
    """The account as the Billing card shows it, read now: name, payout bank, charges and payouts enabled."""
    summary = await actions.account_summary(env, account_id)
    name = summary.pop("name")
    return AccountInfo(id=account_id, name=name, details={"livemode": False, **summary})
