"""A year of billing history for one business: what billing memory's tests, benchmark and demo answer from.

Priced as a real shop prices: each invoice line's unit price is the item's list price moved by a few percent
either way (a discount here, an after-hours rate there), so "what did we charge" has a spread to report. Parts
carry a cost (what the shop pays), so markups can be computed. Written through the core services, so every
send and payment raises its domain events as in real use (and queues embedding when the flag is on). One
customer is at 14 Oak St, with several visits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.invoices import service as invoices
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item

# (name, sku, list price, kind, cost)
CATALOG: list[tuple[str, str, str, str, str | None]] = [
    ("Service call & diagnosis", "SVC-CALL", "89.00", "service", None),
    ("Labor (per hour)", "LAB-HR", "115.00", "service", None),
    ("Drain cleaning", "SVC-DRAIN", "189.00", "service", None),
    ("Water heater installation", "SVC-WH-INST", "650.00", "service", None),
    ("Furnace tune-up", "SVC-FURN", "129.00", "service", None),
    ("Faucet installation", "SVC-FAUCET", "145.00", "service", None),
    ("Toilet installation", "SVC-TOILET", "225.00", "service", None),
    ("50-gal gas water heater", "WH-50G", "1149.00", "product", "780.00"),
    ("Garbage disposal, 1/2 HP", "GD-05", "189.99", "product", "112.00"),
    ("Furnace filter 16x25x1", "FLT-1625", "24.50", "product", "9.80"),
    ("Kitchen faucet, pull-down", "FCT-KPD", "219.00", "product", "128.00"),
    ("Pressure relief valve", "VLV-TPR", "32.75", "product", "14.50"),
]
FACTORS = ["0.90", "0.95", "1.00", "1.00", "1.00", "1.05", "1.10", "1.15"]
STREETS = ["Maple Ave", "Ridge Rd", "Central St", "Lake Ave", "Chicago Ave", "Elm St", "Grove St", "Linden Ave"]
TOWNS = ["Evanston", "Skokie", "Wilmette", "Oak Park", "Glenview", "Park Ridge"]
NAMES = ["Maria Kowalski", "James Nguyen", "Linda Okafor", "Robert Garcia", "Patricia Schmidt", "Michael Johnson",
         "Jennifer Patel", "David O'Brien", "Susan Novak", "Daniel Rivera", "Karen Lindqvist", "Thomas Murphy",
         "Nancy Hernandez", "Kevin Kim", "Angela Bauer", "Brian Haddad", "Rosa Castillo", "Samuel Okafor"]  # fmt: skip
OAK = {"display_name": "Helen Washington", "billing_line1": "14 Oak St", "billing_city": "Evanston",
       "billing_region": "IL", "billing_postal_code": "60201"}  # fmt: skip


@dataclass(frozen=True)
class Seeded:
    invoices: int
    sent: int
    estimates: int
    oak_customer_id: int


async def _items(session: AsyncSession, tenant_id: int) -> list[Item]:
    have = {i.sku: i for i in await session.scalars(select(Item).where(Item.tenant_id == tenant_id))}
    out = []
    for name, sku, price, kind, cost in CATALOG:
        item = have.get(sku)
        if item is None:
            item = await create_item(
                session, tenant_id, {"name": name, "sku": sku, "unit_price": price, "kind": kind, "cost": cost}
            )
        elif cost is not None and item.cost is None:
            item.cost = Decimal(cost)
        out.append(item)
    return out


def _lines(rng: random.Random, items: list[Item]) -> list[dict[str, Any]]:
    services = [i for i in items if i.kind == "service" and i.sku != "LAB-HR"]
    products = [i for i in items if i.kind == "product"]
    picked = [rng.choice(services)]
    if picked[0].sku == "SVC-WH-INST" or rng.random() < 0.5:
        heater = next(i for i in products if i.sku == "WH-50G")
        picked.append(heater if picked[0].sku == "SVC-WH-INST" else rng.choice(products))
    if rng.random() < 0.4:
        picked.append(next(i for i in items if i.sku == "LAB-HR"))
    lines = []
    for item in dict.fromkeys(picked):
        price = (item.unit_price * Decimal(rng.choice(FACTORS))).quantize(Decimal("0.01"), ROUND_HALF_UP)
        quantity = rng.choice(["1", "1.5", "2", "3"]) if item.sku == "LAB-HR" else "1"
        lines.append({"item_id": item.id, "quantity": quantity, "unit_price": str(price)})
    return lines


async def seed_year(
    session: AsyncSession, tenant_id: int, *, invoices_count: int = 240, today: date | None = None, seed: int = 22
) -> Seeded:
    """A year of invoices (and a few estimates) ending `today`; commits as it goes."""
    rng = random.Random(seed)
    today = today or date.today()
    items = await _items(session, tenant_id)
    customers = [await create_customer(session, tenant_id, OAK)]
    for n, name in enumerate(NAMES):
        customers.append(
            await create_customer(
                session,
                tenant_id,
                {
                    "display_name": name,
                    "billing_line1": f"{100 + 37 * n} {STREETS[n % len(STREETS)]}",
                    "billing_city": TOWNS[n % len(TOWNS)],
                    "billing_region": "IL",
                },
            )
        )
    await session.commit()
    sent = 0
    for n in range(invoices_count):
        issued = today - timedelta(days=rng.randint(0, 364))
        customer = customers[0] if n % 40 == 7 else rng.choice(customers[1:])
        invoice = await invoices.create_invoice(
            session,
            tenant_id,
            {"customer_id": customer.id, "issue_date": issued, "lines": _lines(rng, items), "status": "DRAFT"},
        )
        roll = rng.random()
        if roll >= 0.08:  # 8 % stay drafts: never sent, never in memory
            await invoices.send_invoice(session, tenant_id, invoice.id)
            sent += 1
            if roll >= 0.3:
                share = Decimal(1) if roll >= 0.45 else Decimal("0.5")
                amount = (invoice.total * share).quantize(Decimal("0.01"), ROUND_HALF_UP)
                await invoices.record_payment(
                    session,
                    tenant_id,
                    invoice.id,
                    {"amount": str(amount), "received_on": min(today, issued + timedelta(days=9)), "method": "card"},
                )
        if n % 50 == 49:
            await session.commit()
    estimates_count = max(3, invoices_count // 10)
    for n in range(estimates_count):
        est = await estimates.create_estimate(
            session,
            tenant_id,
            {
                "customer_id": rng.choice(customers).id,
                "issue_date": today - timedelta(days=rng.randint(0, 120)),
                "lines": _lines(rng, items),
            },
        )
        if n % 3:
            await estimates.send_estimate(session, tenant_id, est.id)
    await session.commit()
    return Seeded(invoices_count, sent, estimates_count, customers[0].id)
