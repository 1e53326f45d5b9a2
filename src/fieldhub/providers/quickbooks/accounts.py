"""QuickBooks chart of accounts for the field-mapping page: which accounts each fieldhub concept may land in.

The hub's mapping page is generic: it reads MAPPING_FIELDS and calls list_accounts() through the registry.
"""

from __future__ import annotations

from typing import Any

from fieldhub.hub.connections.mapping import MappedAccount, MappingField
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.http import ProviderClient
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import ConnectionAuth
from fieldhub.hub.registry import get

KEY = "quickbooks"
MINOR_VERSION = "75"
# QBO caps a query page at 1,000 rows; a chart of accounts is rarely past a few hundred.
PAGE = 1000

MAPPING_FIELDS: tuple[MappingField, ...] = (
    MappingField("service_revenue", "Service Revenue", "The Income account where labour revenue lands.", ("Income",)),
    MappingField(
        "product_revenue",
        "Product / Parts Revenue",
        "A separate Income account for material sales, so your accountant can track gross profit per category.",
        ("Income",),
    ),
    MappingField(
        "sales_tax_payable",
        "Sales Tax Payable",
        "The liability account where collected sales tax accrues until you remit it.",
        ("Other Current Liability",),
    ),
    MappingField(
        "discounts",
        "Discounts Given",
        "Usually an Income account (negative) for promotional and loyalty discounts.",
        ("Income", "Expense"),
    ),
    MappingField(
        "bank_deposit", "Bank Deposit Account", "Your operating checking account, where card payouts land.", ("Bank",)
    ),
    MappingField(
        "processing_fees",
        "Payment processing fees",
        "The expense account for what Stripe keeps from each payout; it is booked on the payout's bank deposit.",
        ("Expense", "Other Expense"),
        suggest=("stripe", "processing fee", "merchant", "bank charge", "fee"),
    ),
)


async def list_accounts(env: OAuthEnv, connection: Connection) -> list[MappedAccount]:
    """The company's active accounts, read live from QuickBooks (or its emulator in demo and test mode)."""
    spec = get(KEY)
    base = env.endpoints.url(KEY, spec.api.base_url.format(account_id=connection.account_id))
    client = ProviderClient(
        spec.api,
        ConnectionAuth(env, connection.id),
        provider=KEY,
        transport=env.endpoints.transport(KEY),
        base_url=base,
    )
    found: list[MappedAccount] = []
    async with client:
        start = 1
        while True:
            query = f"select * from Account where Active = true STARTPOSITION {start} MAXRESULTS {PAGE}"
            response = await client.get(
                "/query",
                params={"query": query, "minorversion": MINOR_VERSION},
                headers={"Accept": "application/json"},
                bucket=connection.account_id,
            )
            rows: list[dict[str, Any]] = response.json().get("QueryResponse", {}).get("Account", [])
            found.extend(
                MappedAccount(
                    id=str(row["Id"]),
                    name=row.get("FullyQualifiedName") or row.get("Name", ""),
                    type=row.get("AccountType", ""),
                    number=row.get("AcctNum", ""),
                )
                for row in rows
            )
            if len(rows) < PAGE:
                break
            start += PAGE
    return sorted(found, key=lambda a: (a.type, a.name.lower()))
