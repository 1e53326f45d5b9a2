"""Resync on an invoice page: the invoice and any payment recorded after its first sync go again, once each."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from fieldhub.core.invoices.service import record_payment
from fieldhub.db import utcnow
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.sync import engine
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RecordEvent
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup
from tests.hub.sync.test_engine import make_invoice


async def states(session, qbo: QBOSetup) -> dict[tuple[str, int], str]:
    rows = await session.scalars(
        select(LedgerRow).where(LedgerRow.connection_id == qbo.connection_id).execution_options(populate_existing=True)
    )
    out = {(r.entity, r.local_id): str(r.state) for r in rows}
    await session.commit()
    return out


def payments_noted(qbo: QBOSetup, payment_id: int) -> list[dict]:
    return [p for p in qbo.objects("Payment").values() if p.get("PrivateNote") == f"fieldhub payment #{payment_id}"]


async def test_resync_sends_the_invoice_and_the_payment_that_missed_it(
    session, owner, make_client, biz: Business, other_biz: Business, qbo: QBOSetup, monkeypatch
):
    # The backoff is a full jitter, which can be a few ms: a minute here, so "not due yet" holds every time.
    monkeypatch.setattr(engine, "backoff", lambda attempts, retry_after, rng: 60.0)
    _, _, invoice = await make_invoice(session, biz, "Resync Rita")
    early = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "20.00"})
    await session.commit()
    await qbo.sync()
    # A payment recorded after the first sync missed it: QuickBooks was down, so it waits, backed off.
    late = await record_payment(session, biz.tenant.id, invoice.id, {"amount": "30.00"})
    await session.commit()
    qbo.emulator.faults.append(FaultRule(kind="status", status=503, count=4, path="/payment$", method="POST"))
    await qbo.sync()
    assert payments_noted(qbo, late.id) == []
    before = await states(session, qbo)
    assert before[("payment", late.id)] == LedgerState.PENDING
    assert await qbo.sync() is None  # not due yet: a Sync Now of due work alone would not send it
    assert before[("payment", early.id)] == before[("invoice", invoice.id)] == LedgerState.SYNCED

    before_remote = await session.scalar(select(LedgerRow.remote_id).where(LedgerRow.entity == "invoice"))
    await session.commit()
    page = await owner.get(f"/invoices/{invoice.id}")
    assert "Resync to QuickBooks Online" in page.text
    assert f'name="connection_id" value="{qbo.connection_id}"' in page.text

    # No CSRF token: refused, nothing marked.
    bare = await owner.post(f"/invoices/{invoice.id}/resync", data={"connection_id": str(qbo.connection_id)})
    assert bare.status_code == 403
    # Another business: its owner can't resync this invoice (404), nor use this connection for its own.
    async with make_client() as stranger:
        await stranger.login(other_biz.owner.email)
        r = await stranger.submit(f"/invoices/{invoice.id}/resync", {"connection_id": str(qbo.connection_id)})
        assert r.status_code == 404
        _, _, theirs = await make_invoice(session, other_biz, "Their Theo")
        r = await stranger.submit(f"/invoices/{theirs.id}/resync", {"connection_id": str(qbo.connection_id)})
        assert r.status_code == 400 and "sync invoices, or it isn" in r.text
    assert await states(session, qbo) == before

    r = await owner.submit(f"/invoices/{invoice.id}/resync", {"connection_id": str(qbo.connection_id)})
    assert r.status_code == 303 and r.headers["location"] == f"/invoices/{invoice.id}?msg=resync"
    after = await states(session, qbo)
    assert after[("invoice", invoice.id)] == after[("payment", late.id)] == LedgerState.PENDING
    due = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "payment", LedgerRow.local_id == late.id))
    assert due.next_attempt_at <= utcnow() and due.attempts == 0
    await session.commit()
    assert after[("payment", early.id)] == LedgerState.SYNCED  # it went with the first sync: not sent again

    run = await qbo.sync(trigger="manual")
    assert (run.created, run.failed) == (1, 0), run.errors
    events = [e.summary for e in await session.scalars(select(RecordEvent).where(RecordEvent.run_id == run.id))]
    assert f"updated invoice #{invoice.id} as {before_remote}" in events
    assert not any(f"payment #{early.id} " in e for e in events)
    assert len(payments_noted(qbo, late.id)) == 1 and len(payments_noted(qbo, early.id)) == 1
    remote = next(
        o for o in qbo.objects("Invoice").values() if o.get("PrivateNote") == f"fieldhub invoice #{invoice.id}"
    )
    assert Decimal(str(remote["Balance"])) == invoice.total - Decimal("50.00")
    assert set((await states(session, qbo)).values()) == {LedgerState.SYNCED}


async def test_a_draft_is_not_resynced_and_a_technician_cannot(session, client, owner, biz: Business, qbo: QBOSetup):
    _, _, draft = await make_invoice(session, biz, "Draft Dora", send=False)
    page = await owner.get(f"/invoices/{draft.id}")
    assert "Accounting sync" in page.text and "Sync to QuickBooks Online" not in page.text
    r = await owner.submit(f"/invoices/{draft.id}/resync", {"connection_id": str(qbo.connection_id)})
    assert r.status_code == 400 and "draft invoice isn" in r.text
    assert ("invoice", draft.id) not in await states(session, qbo)
