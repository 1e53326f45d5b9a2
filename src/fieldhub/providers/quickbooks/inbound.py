"""QuickBooks inbound: changes made there come in through the accounting capability (capabilities/accounting/
inbound.py), read by Change Data Capture (QuickBooksLedger.changed_since) and by its webhooks (webhooks.py)."""

from __future__ import annotations

from typing import Any

from fieldhub.capabilities.accounting import inbound as accounting
from fieldhub.hub.oauth.env import OAuthEnv

# The records brought in (fieldhub check): customers both ways, payments made in QuickBooks. An invoice voided
# there is applied here too, but invoices are fieldhub's own: other edits to them are not brought back.
IMPORTS = ("customer", "payment")


async def poll(env: OAuthEnv, connection_id: int, **options: Any) -> accounting.Polled | None:
    """The CDC catch-up of one connection (the dispatcher's periodic `inbound.poll`)."""
    return await accounting.poll(env, connection_id, **options)
