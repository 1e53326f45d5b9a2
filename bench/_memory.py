"""Billing memory's benchmark history: one business with N sent invoices and their vectors, bulk-loaded.

Invoices are written with the database's bulk insert (the services would take an hour for 100,000), in R
distinct kinds of work (the demo year's catalog and price spread): invoice i has the lines of kind i % R, its
own customer, number and date. The R kinds are embedded for real by the local model (their documents as the
queue would embed them) and each invoice gets its kind's vector: the matrix has the size, the spread and the
neighbours of a real one without the hours 100,000 local embeddings take (~150 a second on this machine).
The load ends with the database's statistics gathered (and on PostgreSQL vacuumed), as autovacuum would have.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from fieldhub.capabilities.memory import documents
from fieldhub.capabilities.memory.demo_year import CATALOG, FACTORS
from fieldhub.capabilities.memory.embedders import LocalEmbedder, approx_tokens
from fieldhub.capabilities.memory.models import MemoryVector
from fieldhub.capabilities.memory.store import to_bytes
from fieldhub.core.accounts import service as accounts
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice, InvoiceLine
from fieldhub.core.items.models import Item
from fieldhub.db import utcnow
from fieldhub.hub.oauth.env import OAuthEnv

CHUNK = 2000
CENT = Decimal("0.01")


async def create_business(env: OAuthEnv, slug: str = "memory") -> int:
    async with env.sessionmaker() as session:
        tenant = await accounts.create_tenant(session, name=f"Bench {slug}", slug=slug)
        await session.commit()
        return tenant.id


def _kinds(rng: random.Random, items: list[dict[str, Any]], r: int) -> list[list[dict[str, Any]]]:
    services = [i for i in items if i["kind"] == "service" and i["sku"] != "LAB-HR"]
    products = [i for i in items if i["kind"] == "product"]
    labor = next(i for i in items if i["sku"] == "LAB-HR")
    kinds = []
    for _ in range(r):
        picked = [rng.choice(services)]
        if picked[0]["sku"] == "SVC-WH-INST" or rng.random() < 0.5:
            picked.append(products[0] if picked[0]["sku"] == "SVC-WH-INST" else rng.choice(products))
        if rng.random() < 0.4:
            picked.append(labor)
        lines = []
        for pos, item in enumerate(picked):
            price = (item["unit_price"] * Decimal(rng.choice(FACTORS))).quantize(CENT, ROUND_HALF_UP)
            qty = Decimal(rng.choice(["1", "1.5", "2"])) if item is labor else Decimal(1)
            lines.append(
                {"position": pos, "item_id": item["id"], "description": item["name"], "quantity": qty,
                 "unit_price": price, "amount": (price * qty).quantize(CENT, ROUND_HALF_UP)}
            )  # fmt: skip
        kinds.append(lines)
    return kinds


async def load_history(env: OAuthEnv, tenant_id: int, n: int, *, kinds: int = 300, vectors: bool = True) -> float:
    """N paid invoices (and, with `vectors`, their embeddings); returns the seconds the real embedding took."""
    rng = random.Random(22)
    today = date(2026, 12, 1)
    async with env.sessionmaker() as session:
        base_item = int(await session.scalar(select(Item.id).order_by(Item.id.desc()).limit(1)) or 0)
        items = [
            {"id": base_item + k + 1, "tenant_id": tenant_id, "name": name, "sku": sku, "unit_price": Decimal(price),
             "kind": kind, "cost": Decimal(cost) if cost else None, "description": ""}
            for k, (name, sku, price, kind, cost) in enumerate(CATALOG)
        ]  # fmt: skip
        await session.execute(insert(Item), items)
        base_customer = int(await session.scalar(select(Customer.id).order_by(Customer.id.desc()).limit(1)) or 0)
        customers = [
            {"id": base_customer + c + 1, "tenant_id": tenant_id, "display_name": f"Customer {c}",
             "billing_line1": f"{10 + c} Oak St" if c % 50 == 0 else f"{100 + c} Maple Ave", "billing_city": "Evanston"}
            for c in range(max(1, n // 20))
        ]  # fmt: skip
        await session.execute(insert(Customer), customers)
        await session.commit()
        base_invoice = int(await session.scalar(select(Invoice.id).order_by(Invoice.id.desc()).limit(1)) or 0)
    work = _kinds(rng, items, kinds)
    for start in range(0, n, CHUNK):
        invoices, lines = [], []
        for i in range(start, min(n, start + CHUNK)):
            kind = work[i % kinds]
            total = sum((line["amount"] for line in kind), start=Decimal(0))
            invoice_id = base_invoice + i + 1
            issued = today - timedelta(days=i % 365)
            invoices.append(
                {"id": invoice_id, "tenant_id": tenant_id, "number": f"B-{invoice_id}",
                 "customer_id": customers[i % len(customers)]["id"], "status": "PAID", "issue_date": issued,
                 "subtotal": total, "total": total, "amount_paid": total, "balance": Decimal(0),
                 "public_token": f"bench-{tenant_id}-{invoice_id}", "sent_at": utcnow()}
            )  # fmt: skip
            lines += [{**line, "invoice_id": invoice_id} for line in kind]
        async with env.sessionmaker() as session:
            await session.execute(insert(Invoice), invoices)
            await session.execute(insert(InvoiceLine), lines)
            await session.commit()
    await settle(env)
    if not vectors:
        return 0.0
    import time

    embedder = LocalEmbedder()
    async with env.sessionmaker() as session:
        docs = await documents.documents(
            session, tenant_id, "invoice", [base_invoice + k + 1 for k in range(min(kinds, n))]
        )
    started = time.perf_counter()
    embedded = await embedder.embed([d.text for d in docs])
    seconds = time.perf_counter() - started
    noise = np.random.default_rng(22)
    for start in range(0, n, CHUNK):
        rows = []
        for i in range(start, min(n, start + CHUNK)):
            v = embedded.vectors[i % len(docs)] + noise.normal(0, 0.01, embedder.dimensions).astype(np.float32)
            v /= np.linalg.norm(v)
            rows.append(
                {"tenant_id": tenant_id, "entity": "invoice", "record_id": base_invoice + i + 1,
                 "model": embedder.model, "dims": embedder.dimensions, "vector": to_bytes(v), "text": "",
                 "tokens": approx_tokens(docs[i % len(docs)].text), "record_version": 1, "reason": "bench"}
            )  # fmt: skip
        async with env.sessionmaker() as session:
            await session.execute(insert(MemoryVector), rows)
            await session.commit()
    await settle(env)
    return seconds


async def settle(env: OAuthEnv) -> None:
    """What a database that grew to this size over months has had done by now: its statistics gathered and, on
    PostgreSQL, its visibility map set by (auto)vacuum, so index-only scans stay in the index. A bulk load just
    written has neither: its counts read every row of the heap."""
    async with env.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM ANALYZE" if env.engine.dialect.name == "postgresql" else "ANALYZE")
