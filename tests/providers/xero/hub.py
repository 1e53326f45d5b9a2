"""A Xero connection in the hub (through the mounted emulator's consent page, accounts mapped), and records to sync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice
from fieldhub.core.items.service import create_item
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.engine import sync_connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.providers.xero.emulator import ORGANISATIONS, XeroEmulator
from fieldhub.providers.xero.emulator.books import Organisation
from tests.conftest import Business
from tests.hub.oauth.conftest import consent

TENANT = ORGANISATIONS[0].id
MAPPING = {
    "service_revenue": "200",
    "product_revenue": "260",
    "sales_tax_payable": "820",
    "discounts": "260",
    "bank_deposit": "090",
    "payments_clearing": "092",
    "processing_fees": "404",
}


@dataclass
class XeroSetup:
    app: Any
    env: Any
    connection_id: int
    emulator: XeroEmulator

    async def sync(self, **kw: Any) -> Any:
        options = {"sleep": _no_sleep, "timeout": 2.0} | kw.pop("client_options", {})
        return await sync_connection(
            self.env, self.connection_id, trigger=kw.pop("trigger", "manual"), client_options=options, **kw
        )

    @property
    def books(self) -> Organisation:
        return self.emulator.organisations[TENANT]


async def _no_sleep(seconds: float) -> None:
    return None


async def connect_xero(app: Any, owner: Any, session: Any) -> XeroSetup:
    """Connect Xero (Riverbend's organisation) through the emulator's consent page and map its accounts."""
    response, _ = await consent(owner, "xero", account=TENANT)
    assert response.status_code in (200, 302, 303), response.text
    connection = await session.scalar(select(Connection).where(Connection.provider == "xero"))
    assert connection is not None and connection.account_id == TENANT
    connection.settings = {**(connection.settings or {}), "account_mapping": dict(MAPPING)}
    connection.auto_sync = True
    await session.commit()
    return XeroSetup(app, env_for(app), connection.id, app.state.endpoints.emulators["xero"])


async def drain(session: Any, xero: XeroSetup, runs: int = 30, **options: Any) -> None:
    for _ in range(runs):
        await xero.sync(trigger="backfill", client_options=options)
        left = await session.scalar(
            select(LedgerRow.id).where(
                LedgerRow.connection_id == xero.connection_id, LedgerRow.state == LedgerState.PENDING
            )
        )
        if left is None:
            await session.commit()
            return
        await session.execute(
            update(LedgerRow).where(LedgerRow.connection_id == xero.connection_id).values(next_attempt_at=utcnow())
        )
        await session.commit()
    raise AssertionError("sync did not finish")


async def books_of(session: Any, biz: Business, customers: int) -> dict[str, list]:
    tenant = biz.tenant.id
    items = [await create_item(session, tenant, {"name": f"Part {i}", "unit_price": f"{10 + i}.25"}) for i in range(2)]
    made: dict[str, list] = {"customer": [], "invoice": [], "payment": [], "item": items}
    for n in range(customers):
        customer = await create_customer(
            session,
            tenant,
            {
                "display_name": f"Customer {n:03d}",
                "email": f"c{n}@example.com",
                "billing_line1": f"{n} Mill Lane",
                "billing_city": "Riverbend",
                "service_line1": f"{n} Site Road",
                "service_city": "Riverbend",
            },
        )
        invoice = await create_invoice(
            session,
            tenant,
            {
                "customer_id": customer.id,
                "lines": [
                    {"item_id": items[n % 2].id, "quantity": "2"},
                    {"description": "Labour", "unit_price": f"{80 + n}.00"},
                ],
            },
        )
        await send_invoice(session, tenant, invoice.id)
        payment = await record_payment(session, tenant, invoice.id, {"amount": "5.00"})
        made["customer"].append(customer)
        made["invoice"].append(invoice)
        made["payment"].append(payment)
    await session.commit()
    return made
