"""Asking billing memory: figures from the demo year, each traceable, computed here again from the database
(issue 22 item 4). The local model embeds; the business next door never sees a record."""

from __future__ import annotations

import re
import statistics
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import httpx
from sqlalchemy import func, select

from fieldhub.capabilities.memory import queue
from fieldhub.capabilities.memory.demo_year import seed_year
from fieldhub.core.accounts.service import create_api_token
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.invoices.models import Invoice, InvoiceLine
from fieldhub.core.items.models import Item
from fieldhub.core.money import format_money
from fieldhub.hub.oauth.env import env_for
from tests.conftest import PASSWORD, Browser, make_business

SENT = ("SENT", "PARTIALLY_PAID", "PAID")
TODAY = date(2026, 12, 1)


async def _lines(session, tenant_id: int, where) -> list[tuple[Decimal, str, date, int | None]]:  # noqa: ANN001
    rows = await session.execute(
        select(InvoiceLine.unit_price, Invoice.number, Invoice.issue_date, InvoiceLine.item_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.tenant_id == tenant_id, Invoice.status.in_(SENT), where)
    )
    return [tuple(r) for r in rows.all()]  # type: ignore[misc]


def _figures(body: dict) -> dict[str, dict]:
    return {f["name"]: f for f in body["figures"]}


async def test_issue22_item4_ask_answers_from_real_history_and_never_across_tenants(flagged) -> None:
    async with flagged.state.sessionmaker() as session:
        biz = await make_business(session, "year")
        other = await make_business(session, "next")
        tenant_id, owner_email = biz.tenant.id, biz.owner.email
        seeded = await seed_year(session, tenant_id, invoices_count=70, today=TODAY)
        token = await create_api_token(session, biz.owner, "memory")
        other_token = await create_api_token(session, other.owner, "memory")
        await session.commit()
    embedded = await queue.embed_due(env_for(flagged))
    assert embedded == seeded.sent + len([n for n in range(seeded.estimates) if n % 3])

    transport = httpx.ASGITransport(app=flagged)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

        async def asks(q: str, bearer: str = token) -> dict:
            r = await http.get("/api/v1/memory/ask", params={"q": q}, headers={"Authorization": f"Bearer {bearer}"})
            assert r.status_code == 200, r.text
            return r.json()

        # What did we charge: every sent invoice's water heater installation line, figured here from the database.
        body = await asks("what did we charge for a water heater install")
        async with flagged.state.sessionmaker() as session:
            rows = await _lines(session, tenant_id, func.lower(InvoiceLine.description).like("%water heater install%"))
        prices = sorted(r[0] for r in rows)
        assert body["enough_history"] and body["kind"] == "price" and len(prices) >= 5
        fig = _figures(body)
        assert fig["min"]["value"] == format_money(prices[0]) and fig["max"]["value"] == format_money(prices[-1])
        expected_median = Decimal(statistics.median(prices)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert fig["median"]["value"] == format_money(expected_median)
        assert fig["count"]["value"] == str(len(prices))
        assert fig["from"]["value"] == min(r[2] for r in rows).isoformat()
        assert fig["to"]["value"] == max(r[2] for r in rows).isoformat()
        numbers = {r[1] for r in rows}
        assert {r["number"] for r in body["records"]} == numbers and set(fig["count"]["sources"]) == numbers
        assert {n for n in fig["min"]["sources"]} <= {r[1] for r in rows if r[0] == prices[0]}
        assert all(re.fullmatch(r"/invoices/\d+", r["link"]) for r in body["records"])

        # Markup on plumbing parts: parts with a cost, near "plumbing" (the furnace filter is not), from their lines.
        body = await asks("our typical markup on plumbing parts")
        assert body["kind"] == "markup" and body["enough_history"], body["answer"]
        async with flagged.state.sessionmaker() as session:
            items = {i.name: i for i in await session.scalars(select(Item).where(Item.tenant_id == tenant_id))}
            counted = [name for name in items if name in body["basis"]]
            assert "Furnace filter 16x25x1" not in counted and "Kitchen faucet, pull-down" in counted
            assert all(items[n].kind == "product" and items[n].cost for n in counted)
            ids = {items[n].id: items[n].cost for n in counted}
            rows = await _lines(session, tenant_id, InvoiceLine.item_id.in_(list(ids)))
        markups = sorted(
            ((price - ids[item]) / ids[item] * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
            for price, _, _, item in rows
        )
        fig = _figures(body)
        assert fig["min"]["value"] == f"{markups[0]}%" and fig["max"]["value"] == f"{markups[-1]}%"
        assert fig["count"]["value"] == str(len(markups))
        median_markup = Decimal(statistics.median(markups)).quantize(Decimal("0.1"), ROUND_HALF_UP)
        assert fig["median"]["value"] == f"{median_markup}%"

        # The last visit to 14 Oak St: the newest sent record of the customer there.
        body = await asks("last time we serviced 14 Oak St")
        async with flagged.state.sessionmaker() as session:
            inv = (
                await session.execute(
                    select(Invoice.number, Invoice.issue_date).where(
                        Invoice.customer_id == seeded.oak_customer_id, Invoice.status.in_(SENT)
                    )
                )
            ).all()
            est = (
                await session.execute(
                    select(Estimate.number, Estimate.issue_date).where(
                        Estimate.customer_id == seeded.oak_customer_id, Estimate.status != "draft"
                    )
                )
            ).all()
        visits = sorted(inv + est, key=lambda r: r[1], reverse=True)
        assert body["kind"] == "visit" and body["enough_history"] and visits
        assert _figures(body)["last visit"]["value"] == visits[0][1].isoformat()
        assert visits[0][0] in body["answer"] and len(body["records"]) == len(visits)

        # Nothing made up: no history, no figures.
        body = await asks("what did we charge for a swimming pool heat pump")
        assert not body["enough_history"] and body["figures"] == []
        assert body["answer"].startswith("I don't have enough history")

        # The business next door has no history: it hears so, and never one of this business's records.
        for q in ("what did we charge for a water heater install", "last time we serviced 14 Oak St"):
            body = await asks(q, other_token)
            assert not body["enough_history"] and body["records"] == [] and body["figures"] == []

        # The dashboard's box, and the page with the answer and its records linked.
        browser = Browser(transport=transport, base_url="http://testserver")
        await browser.login(owner_email, PASSWORD)
        home = await browser.get("/")
        assert 'action="/memory"' in home.text and 'name="q"' in home.text
        page = await browser.get("/memory", params={"q": "what did we charge for a water heater install"})
        assert page.status_code == 200 and 'data-figure="median"' in page.text and "/invoices/" in page.text
        await browser.aclose()
