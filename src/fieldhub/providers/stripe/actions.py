"""Stripe operations that are not record sync: the official SDK pointed at Stripe (or its emulator), Pay Now checkout,
Account Links onboarding, and reading a connected account's payout details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import stripe

from fieldhub.hub import registry
from fieldhub.hub.oauth.client import credentials
from fieldhub.hub.refunds import RefundRefused

if TYPE_CHECKING:
    from fieldhub.core.invoices.models import Invoice
    from fieldhub.hub.connections.models import Connection
    from fieldhub.hub.oauth.env import OAuthEnv

KEY = "stripe"
# The version of shared/specs/stripe/spec3.yaml: requests and replies are checked against it.
API_VERSION = "2023-08-16"
CONNECT_BASE = "https://connect.stripe.com"


class PaymentUnavailable(Exception):
    """Stripe refused to start a checkout for this account (revoked access, charges disabled...)."""


@asynccontextmanager
async def client(env: OAuthEnv) -> AsyncIterator[stripe.StripeClient]:
    """The official SDK with the platform's secret key, at Stripe's URL here (the mounted emulator in demo/test)."""
    spec = registry.get(KEY)
    creds = credentials(env, spec)
    http_client = stripe.HTTPXClient(timeout=30)
    transport = env.endpoints.transport(KEY)
    if transport is not None:
        # The SDK builds its own AsyncClient and has no transport option; a mounted emulator is reached in-process.
        http_client._client_async = httpx.AsyncClient(transport=transport)
    sdk = stripe.StripeClient(
        creds.client_secret,
        stripe_version=API_VERSION,
        base_addresses={
            "api": env.endpoints.url(KEY, spec.api.base_url),
            "connect": env.endpoints.url(KEY, CONNECT_BASE),
        },
        http_client=http_client,
        max_network_retries=2,
    )
    try:
        yield sdk
    finally:
        await http_client.close_async()  # the SDK's AsyncClient would otherwise outlive its event loop


def to_minor(amount: Decimal) -> int:
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has fractions of a cent")
    return int(cents)


def from_minor(cents: int) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def idempotency_key(invoice: Invoice) -> str:
    """One checkout per invoice, version and open balance a day: reopening the link replays the same session.

    The day is in the key because a session lives 24 hours: tomorrow's visit gets a fresh one.
    """
    day = datetime.now(UTC).strftime("%Y%m%d")
    return f"fieldhub-pay-{invoice.tenant_id}-{invoice.id}-v{invoice.version}-{to_minor(invoice.balance)}-{day}"


async def create_checkout(
    env: OAuthEnv,
    connection: Connection,
    invoice: Invoice,
    *,
    currency: str,
    success_url: str,
    cancel_url: str,
    customer_email: str = "",
) -> str:
    """A Checkout Session for the invoice's open balance on the connected account; returns where to send the payer."""
    names = {"invoice_id": str(invoice.id), "invoice_number": invoice.number, "tenant_id": str(invoice.tenant_id)}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": to_minor(invoice.balance),
                    "product_data": {"name": f"Invoice {invoice.number}"},
                },
                "quantity": 1,
            }
        ],
        "payment_method_types": ["card", "us_bank_account"],
        "client_reference_id": str(invoice.id),
        "metadata": names,
        "payment_intent_data": {"metadata": names, "description": f"Invoice {invoice.number}"},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email:
        params["customer_email"] = customer_email
    options = {"stripe_account": connection.account_id, "idempotency_key": idempotency_key(invoice)}
    try:
        async with client(env) as sdk:
            session = await sdk.v1.checkout.sessions.create_async(params, options)  # type: ignore[arg-type]
    except stripe.StripeError as e:
        raise PaymentUnavailable(e.user_message or type(e).__name__) from e
    return str(session.url)


async def refund(
    env: OAuthEnv, connection: Connection, payment_intent: str, amount: Decimal, *, reason: str, idempotency_key: str
) -> str:
    """Refund part or all of a payment Stripe took (hub/refunds.py); returns the refund's id.

    Stripe's `reason` takes only its own three values, so the owner's words go in metadata. RefundRefused
    carries Stripe's message (charge already refunded, not yet settled...).
    """
    params: dict[str, Any] = {
        "payment_intent": payment_intent,
        "amount": to_minor(amount),
        "metadata": {"source": "fieldhub", **({"reason": reason[:500]} if reason else {})},
    }
    options = {"stripe_account": connection.account_id, "idempotency_key": idempotency_key}
    try:
        async with client(env) as sdk:
            made = await sdk.v1.refunds.create_async(params, options)  # type: ignore[arg-type]
    except stripe.StripeError as e:
        raise RefundRefused(e.user_message or type(e).__name__) from e
    return str(made.id)


async def account_summary(env: OAuthEnv, account_id: str) -> dict[str, Any]:
    """What the Billing card shows about a connected account: name, payout bank, whether it can charge and pay out."""
    async with client(env) as sdk:
        account = await sdk.v1.accounts.retrieve_async(account_id)
    return summary_of(account.to_dict())


def summary_of(account: dict[str, Any]) -> dict[str, Any]:
    banks = [
        b for b in ((account.get("external_accounts") or {}).get("data") or []) if b.get("object") == "bank_account"
    ]
    bank = next((b for b in banks if b.get("default_for_currency")), banks[0] if banks else None)
    profile = account.get("business_profile") or {}
    return {
        "name": profile.get("name") or account.get("email") or account.get("id", ""),
        "email": account.get("email") or "",
        "payout_bank": f"{bank.get('bank_name') or 'Bank'} •••• {bank['last4']}" if bank else "None yet",
        "charges": "Enabled" if account.get("charges_enabled") else "Not enabled",
        "payouts": "Enabled" if account.get("payouts_enabled") else "Not enabled",
    }


async def create_account(env: OAuthEnv, *, email: str, business_name: str, country: str = "US") -> str:
    """A new Standard account for a business without one (Stripe's recommended path); returns its id."""
    params: dict[str, Any] = {
        "type": "standard",
        "country": country,
        "capabilities": {
            "card_payments": {"requested": True},
            "transfers": {"requested": True},
            "us_bank_account_ach_payments": {"requested": True},
        },
    }
    if email:
        params["email"] = email
    if business_name:
        params["business_profile"] = {"name": business_name}
    async with client(env) as sdk:
        account = await sdk.v1.accounts.create_async(params)  # type: ignore[arg-type]
    return str(account.id)


async def onboarding_link(env: OAuthEnv, account_id: str, *, refresh_url: str, return_url: str) -> str:
    """A single-use Account Link (it lives five minutes) to Stripe's hosted onboarding."""
    async with client(env) as sdk:
        link = await sdk.v1.account_links.create_async(
            {"account": account_id, "type": "account_onboarding", "refresh_url": refresh_url, "return_url": return_url}
        )
    return str(link.url)


async def list_all(method: Any, params: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a Stripe list (limit 100 per page, `starting_after` the last id)."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page_params = {**params, "limit": 100, **({"starting_after": after} if after else {})}
        page = await method(page_params, options)
        items = [item.to_dict() for item in page.data]
        out.extend(items)
        if not page.has_more or not items:
            return out
        after = items[-1]["id"]
