"""Xero inbound: changes made there come in through the accounting capability (capabilities/accounting/inbound.py),
read with If-Modified-Since (XeroLedger.changed_since) and woken by Xero's webhooks (webhooks.py)."""

from __future__ import annotations

from typing import Any

from fieldhub.capabilities.accounting import inbound as accounting
from fieldhub.hub.oauth.env import OAuthEnv

# The records brought in (fieldhub check): customers both ways, payments made in Xero (paid there → paid here).
# An invoice voided or deleted there is applied here too; other edits to invoices are not brought back.
IMPORTS = ("customer", "payment")


async def poll(env: OAuthEnv, connection_id: int, **options: Any) -> accounting.Polled | None:
    """The If-Modified-Since catch-up of one connection (the dispatcher's periodic `inbound.poll`)."""
    return await accounting.poll(env, connection_id, **options)
