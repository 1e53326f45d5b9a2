"""Embedding on status transitions only, fire-and-forget through the durable queue (issue 22 item 1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import numpy as np
from sqlalchemy import select

from fieldhub.capabilities.memory import queue, store
from fieldhub.capabilities.memory.embedders import Embedded, Kind, normalized
from fieldhub.capabilities.memory.models import MemoryJob, MemoryJobState, MemoryVector
from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.invoices import service as invoices
from fieldhub.hub.oauth.env import env_for
from tests.conftest import make_business


class Counting:
    """An embedder that counts its calls and the texts it was given (vectors from the texts' bytes)."""

    model = "counting-test"
    dimensions = 8
    usd_per_million_tokens = Decimal("0")
    texts_per_second = 1000.0

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def embed(self, texts: Sequence[str], kind: Kind = "document") -> Embedded:
        self.calls.append(list(texts))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the embedding service is down")
        rows = [np.frombuffer(t.encode().ljust(8, b".")[:8], dtype=np.uint8).astype(np.float32) for t in texts]
        return Embedded(normalized(np.vstack(rows)), 10 * len(texts))


async def _invoice(session, tenant_id: int) -> int:
    customer = await create_customer(
        session, tenant_id, {"display_name": "Maria Kowalski", "billing_line1": "14 Oak St", "billing_city": "Evanston"}
    )
    invoice = await invoices.create_invoice(
        session,
        tenant_id,
        {
            "customer_id": customer.id,
            "issue_date": date(2026, 3, 2),
            "lines": [{"description": "Water heater installation", "quantity": "1", "unit_price": "650.00"}],
            "status": "DRAFT",
        },
    )
    await session.commit()
    return invoice.id


async def _drain(app, embedder: Counting) -> int:
    return await queue.embed_due(env_for(app), embedder=embedder)


async def test_issue22_item1_flag_off_embeds_nothing(app, session) -> None:
    biz = await make_business(session, "off")
    invoice_id = await _invoice(session, biz.tenant.id)
    await invoices.send_invoice(session, biz.tenant.id, invoice_id)
    await invoices.record_payment(session, biz.tenant.id, invoice_id, {"amount": "650.00", "method": "card"})
    await session.commit()
    counting = Counting()
    assert await _drain(app, counting) == 0
    assert counting.calls == [] and (await session.scalars(select(MemoryJob))).all() == []


async def test_issue22_item1_send_embeds_once_pay_again_and_a_draft_edit_never(flagged) -> None:
    counting = Counting()
    async with flagged.state.sessionmaker() as session:
        biz = await make_business(session, "on")
        invoice_id = await _invoice(session, biz.tenant.id)
        await invoices.update_invoice(session, biz.tenant.id, invoice_id, {"memo": "Edited while a draft"})
        await session.commit()
        assert await _drain(flagged, counting) == 0 and counting.calls == []

        await invoices.send_invoice(session, biz.tenant.id, invoice_id)
        await session.commit()
        assert await _drain(flagged, counting) == 1 and len(counting.calls) == 1
        assert "Water heater installation" in counting.calls[0][0] and "SENT" in counting.calls[0][0]
        assert await _drain(flagged, counting) == 0 and len(counting.calls) == 1  # nothing twice

        await invoices.record_payment(session, biz.tenant.id, invoice_id, {"amount": "650.00", "method": "card"})
        await session.commit()
        assert await _drain(flagged, counting) == 1 and len(counting.calls) == 2
        assert "PAID" in counting.calls[1][0]
        rows = (await session.scalars(select(MemoryVector))).all()
        assert [(r.record_id, r.reason, r.model) for r in rows] == [(invoice_id, "paid", "counting-test")]

        # An estimate embeds when sent, not when approved.
        customer_id = (await invoices.get_invoice(session, biz.tenant.id, invoice_id)).customer_id
        est = await estimates.create_estimate(
            session,
            biz.tenant.id,
            {"customer_id": customer_id, "issue_date": date(2026, 3, 1), "lines": [
                {"description": "Water heater installation", "quantity": "1", "unit_price": "700.00"}]},
        )  # fmt: skip
        await session.commit()
        await estimates.send_estimate(session, biz.tenant.id, est.id)
        await estimates.approve_estimate(session, biz.tenant.id, est.id)
        await session.commit()
        assert await _drain(flagged, counting) == 1 and len(counting.calls) == 3
        assert await store.count(session, biz.tenant.id) == 2


async def test_issue22_item1_a_failure_never_blocks_the_invoice_and_is_retried(flagged) -> None:
    counting = Counting(fail=1)
    async with flagged.state.sessionmaker() as session:
        biz = await make_business(session, "fail")
        tenant_id = biz.tenant.id
        invoice_id = await _invoice(session, biz.tenant.id)
        sent = await invoices.send_invoice(session, biz.tenant.id, invoice_id)
        await session.commit()
        assert sent.status == "SENT"
        assert await _drain(flagged, counting) == 0 and len(counting.calls) == 1
        job = (await session.scalars(select(MemoryJob))).one()
        assert job.state == MemoryJobState.PENDING and job.attempts == 1 and "embedding service is down" in job.error
        seen = await queue.status(session, biz.tenant.id)
        assert (seen.waiting, seen.embedded) == (1, 0) and "embedding service is down" in seen.last_error
        assert await _drain(flagged, counting) == 0  # backing off: not due yet
        job.next_attempt_at = job.created_at
        await session.commit()
        assert await _drain(flagged, counting) == 1 and len(counting.calls) == 2
        session.expire_all()
        assert (await session.scalars(select(MemoryJob))).one().state == MemoryJobState.DONE
        assert (await queue.status(session, tenant_id)).embedded == 1
