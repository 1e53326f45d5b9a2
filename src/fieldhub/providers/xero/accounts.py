"""Xero's chart of accounts for the field-mapping page: which accounts each fieldhub concept may land in.

Xero's lines and payments name accounts by code, so a mapped account is saved as its Code.
"""

from __future__ import annotations

from fieldhub.hub.connections.mapping import MappedAccount, MappingField
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.http import ProviderClient
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import ConnectionAuth
from fieldhub.hub.registry import get

KEY = "xero"

MAPPING_FIELDS: tuple[MappingField, ...] = (
    MappingField("service_revenue", "Service Revenue", "The revenue account where labour lands.", ("REVENUE", "SALES")),
    MappingField(
        "product_revenue",
        "Product / Parts Revenue",
        "A separate revenue account for material sales, so your accountant can track gross profit per category.",
        ("REVENUE", "SALES"),
    ),
    MappingField(
        "sales_tax_payable",
        "Sales Tax Payable",
        "The liability account where collected sales tax accrues until you remit it.",
        ("CURRLIAB", "LIABILITY"),
    ),
    MappingField(
        "discounts",
        "Discounts Given",
        "Usually a revenue account (negative) for promotional and loyalty discounts.",
        ("REVENUE", "SALES", "EXPENSE", "OVERHEADS"),
    ),
    MappingField(
        "bank_deposit",
        "Bank Deposit Account",
        "Your operating checking account: payments by check or cash, and card payouts, land here.",
        ("BANK",),
    ),
    MappingField(
        "payments_clearing",
        "Card payments clearing",
        "A current asset with payments enabled where card payments wait until their payout reaches the bank.",
        ("CURRENT", "BANK"),
        suggest=("stripe", "clearing"),
    ),
    MappingField(
        "processing_fees",
        "Payment processing fees",
        "The expense account for what Stripe keeps from each payout; it is a line of the payout's bank deposit.",
        ("EXPENSE", "OVERHEADS", "DIRECTCOSTS"),
        suggest=("stripe", "processing fee", "merchant", "bank fee", "fee"),
    ),
)


async def list_accounts(env: OAuthEnv, connection: Connection) -> list[MappedAccount]:
    """The organisation's active accounts, read live from Xero (or its emulator in demo and test mode)."""
    spec = get(KEY)
    assert spec.api is not None
    client = ProviderClient(
        spec.api,
        ConnectionAuth(env, connection.id),
        provider=KEY,
        transport=env.endpoints.transport(KEY),
        base_url=env.endpoints.url(KEY, spec.api.base_url),
    )
    async with client:
        response = await client.get(
            "/Accounts",
            params={"where": 'Status=="ACTIVE"'},
            headers={"Accept": "application/json", "xero-tenant-id": connection.account_id},
            bucket=connection.account_id,
        )
    rows = response.json().get("Accounts", [])
    found = [
        MappedAccount(id=str(r["Code"]), name=r.get("Name", ""), type=r.get("Type", ""), number=str(r["Code"]))
        for r in rows
        if r.get("Code")
    ]
    return sorted(found, key=lambda a: (a.type, a.name.lower()))
