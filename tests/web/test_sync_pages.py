"""A syncing connection's page (web/routes/sync_pages.py, web/sync_view.py) against the QuickBooks emulator through
the real engine: entity cards count their own entity, the history names what each run touched and folds idle runs,
a successful run's lines are notes, every pending record says why it waits, and setup leads from step to step.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select
from tests.conftest import Business
from tests.hub.oauth.conftest import consent
from tests.hub.sync.conftest import MAPPING, QBOSetup, connect_mapped

from fieldhub.capabilities.accounting import backfill
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, send_invoice
from fieldhub.core.items.service import create_item
from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.sync.models import LedgerRow, RunStatus, SyncRun

PAGE = "/settings/integrations/quickbooks"


@pytest.fixture
async def qbo(app, owner, session, biz) -> QBOSetup:
    return await connect_mapped(app, owner, session)


def card(html: str, entity: str) -> dict[str, str]:
    """An entity card's badge and counts, read the way a person reads them (label, then number)."""
    m = re.search(rf'<div class="entity-card" data-entity="{entity}">(.*?)Sync Now', html, re.S)
    assert m, f"no {entity} card"
    body = m.group(1)
    counts = {k.lower(): v for k, v in re.findall(r"<dt>(\w+)</dt><dd[^>]*>(\d+)</dd>", body)}
    badge = re.search(r'<span class="badge \w+"[^>]*>([^<]+)</span>', body)
    return {**counts, "badge": badge.group(1) if badge else "", "text": re.sub(r"<[^>]+>|\s+", " ", body)}


def runs(html: str) -> list[str]:
    """Each run row of a history table, as text."""
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", unescape(m)))
        for m in re.findall(r'<tbody class="run"[^>]*>(.*?)</tbody>', html, re.S)
    ] or [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", unescape(m)))
        for m in re.findall(r"<tr data-run[^>]*>(.*?)</tr>", html, re.S)
    ]


async def a_failed_customer_and_a_good_one(session, biz: Business) -> dict:
    """'Home Depot' is a vendor in the QuickBooks company: its customer fails, and its invoice waits for it.
    'Ada Lovelace' and her invoice (with a new item) go through."""
    t = biz.tenant.id
    depot = await create_customer(session, t, {"display_name": "Home Depot", "email": "hd@example.com"})
    ada = await create_customer(session, t, {"display_name": "Ada Lovelace", "email": "ada@example.com"})
    item = await create_item(session, t, {"name": "Sump pump check", "unit_price": "95.00"})
    invoices = {}
    for name, customer in (("depot", depot), ("ada", ada)):
        invoice = await create_invoice(
            session, t, {"customer_id": customer.id, "lines": [{"item_id": item.id, "quantity": "1"}]}
        )
        await send_invoice(session, t, invoice.id)
        invoices[name] = invoice
    await session.commit()
    return {"depot": depot, "ada": ada, "item": item, "invoices": invoices}


# ----------------------------------------------------------------------------- item 3


async def test_issue15_item3_each_entity_card_counts_its_own_records(owner, session, biz, qbo: QBOSetup):
    await a_failed_customer_and_a_good_one(session, biz)
    run = await qbo.sync()
    # One run over everything: 3 created (Ada, the item, her invoice), 1 failed (Home Depot).
    assert (run.created, run.failed, run.status) == (3, 1, RunStatus.PARTIAL), run.errors

    html = (await owner.get(PAGE)).text
    customers, invoices, items, payments = (card(html, e) for e in ("customer", "invoice", "item", "payment"))
    assert (customers["created"], customers["failed"], customers["badge"]) == ("1", "1", "1 failed")
    # The customer's failure is not the invoices' or the items': theirs are their own counts.
    assert (invoices["created"], invoices["failed"], invoices["badge"]) == ("1", "0", "1 pending")
    assert (items["created"], items["failed"], items["badge"]) == ("1", "0", "In step")
    assert (payments["created"], payments["failed"]) == ("0", "0")


async def test_issue15_item3_backfilled_records_count_on_their_cards(owner, session, biz, qbo: QBOSetup):
    # The QuickBooks company has customers "Mason Realty" and "Jordan Smith" and four items; fieldhub has
    # Mason Realty and one of the items. The backfill links those two and brings the other four in.
    t = biz.tenant.id
    await create_customer(session, t, {"display_name": "Mason Realty"})
    await create_item(session, t, {"name": "Drain cleaning", "unit_price": "149.00"})
    await session.commit()
    await session.execute(LedgerRow.__table__.delete())  # made before the connection: not queued
    await session.commit()
    conn = await session.get(Connection, qbo.connection_id)
    result = await backfill.start(qbo.env, session, conn)
    await session.commit()
    assert (result.linked, result.imported, result.queued) == (2, 4, 0)

    html = (await owner.get(PAGE)).text
    customers, items = card(html, "customer"), card(html, "item")
    assert (customers["created"], customers["badge"]) == ("1", "In step")
    assert "1 matched to records already there" in customers["text"] and "by backfill" in customers["text"]
    assert (items["created"], items["badge"]) == ("3", "In step")
    assert "1 matched to records already there" in items["text"]
    history = runs(html)
    assert len(history) == 1 and "Import" in history[0] and "backfill" in history[0]
    assert "2 customers, 4 items" in history[0]


# ----------------------------------------------------------------------------- item 4


async def test_issue15_item4_records_column_names_what_each_run_touched(owner, session, biz, qbo: QBOSetup):
    await a_failed_customer_and_a_good_one(session, biz)
    await qbo.sync()
    html = (await owner.get(PAGE)).text
    (row,) = runs(html)
    assert "2 customers, 1 item, 1 invoice" in row and " All " not in f" {row} "


async def test_issue15_item4_idle_runs_fold_into_one_row(owner, session, biz, qbo: QBOSetup):
    await a_failed_customer_and_a_good_one(session, biz)
    last = await qbo.sync()
    assert await qbo.sync() is None  # a Sync Now with nothing due writes no run any more (issue 15 item 1)...
    # ...but history from before that holds a dozen such runs: they fold into one row.
    for i in range(12):
        started = last.started_at + timedelta(seconds=i + 1)
        session.add(
            SyncRun(
                tenant_id=biz.tenant.id,
                connection_id=qbo.connection_id,
                trigger="manual",
                direction="export",
                status=RunStatus.SUCCESS,
                started_at=started,
                finished_at=started,
            )
        )
    await session.commit()
    for url in (PAGE, f"{PAGE}/{qbo.connection_id}/history"):
        html = unescape((await owner.get(url)).text)
        assert len(runs(html)) == 1, url  # the one run that did something
        folds = re.findall(r'data-idle-runs="(\d+)"', html)
        assert folds == ["12"], (url, folds)
        assert "12 runs with nothing to do" in html


async def test_issue15_item4_a_successful_run_carries_notes_not_errors(owner, session, biz, qbo: QBOSetup):
    started = utcnow() - timedelta(minutes=5)
    note = "“Mason Realty” is a customer made in QuickBooks; one-way sync does not bring it here."
    lines = {
        RunStatus.SUCCESS: [{"code": "ignored", "reason": note}],
        RunStatus.FAILED: [{"code": "500", "reason": "QuickBooks had an internal error"}],
    }
    for status, errors in lines.items():
        session.add(
            SyncRun(
                tenant_id=biz.tenant.id,
                connection_id=qbo.connection_id,
                trigger="webhook",
                direction="import",
                status=status,
                errors=errors,
                started_at=started,
                finished_at=started,
            )
        )
        started += timedelta(minutes=1)
    await session.commit()
    html = unescape((await owner.get(PAGE)).text)
    success, failed = (re.search(rf'data-status="{s}".*?</tbody>', html, re.S).group(0) for s in ("success", "failed"))
    assert 'data-message="note"' in success and "Note:" in success and "Error" not in success and note in success
    assert 'data-message="error"' in failed and "Error:" in failed


async def test_issue15_item4_every_pending_record_says_why_it_waits(owner, session, biz, qbo: QBOSetup):
    made = await a_failed_customer_and_a_good_one(session, biz)
    await qbo.sync()
    t = biz.tenant.id
    # A record QuickBooks answered "try later" for: backing off until a time.
    later = await create_customer(session, t, {"display_name": "Grace Hopper", "email": "grace@example.com"})
    await session.commit()
    row = await session.scalar(select(LedgerRow).where(LedgerRow.entity == "customer", LedgerRow.local_id == later.id))
    row.error_code, row.error_reason = "retry_later", "QuickBooks answered 503 Service Unavailable"
    row.next_attempt_at = utcnow() + timedelta(minutes=7)
    row.attempts = 2
    await session.commit()
    url = f"{PAGE}/{qbo.connection_id}/records?state=pending"

    text = re.sub(r"\s+", " ", unescape((await owner.get(url)).text))
    assert "Waiting on its customer “Home Depot”, which failed to sync: Customer name conflict" in text
    assert "Backing off after an error: QuickBooks answered 503 Service Unavailable. Next try at" in text

    # Due now with Auto-Sync off: it goes with Sync Now.
    conn = await session.get(Connection, qbo.connection_id)
    conn.auto_sync = False
    row.next_attempt_at = utcnow() - timedelta(seconds=1)
    await session.commit()
    text = re.sub(r"\s+", " ", unescape((await owner.get(url)).text))
    assert "Auto-Sync is off: it goes with the next Sync Now." in text

    # QuickBooks asked the whole connection to wait (a 429 with Retry-After ended the last run).
    conn.auto_sync = True
    await session.commit()
    session.add(
        SyncRun(
            tenant_id=t,
            connection_id=qbo.connection_id,
            trigger="realtime",
            direction="export",
            status=RunStatus.FAILED,
            errors=[{"code": "throttled", "reason": "quickbooks asked fieldhub to wait 120 s"}],
        )
    )
    row.error_code = row.error_reason = ""
    row.next_attempt_at = utcnow() + timedelta(minutes=2)
    await session.commit()
    text = re.sub(r"\s+", " ", unescape((await owner.get(url)).text))
    assert "QuickBooks Online asked fieldhub to slow down (its rate limit). Next try at" in text

    # The sign-in stopped working: every pending record waits for Reconnect, and its own page says so too.
    conn.status = ConnectionStatus.NEEDS_REAUTH
    await session.commit()
    text = re.sub(r"\s+", " ", unescape((await owner.get(url)).text))
    assert text.count("Needs reconnect:") == 2
    invoice_row = await session.scalar(
        select(LedgerRow).where(LedgerRow.entity == "invoice", LedgerRow.local_id == made["invoices"]["depot"].id)
    )
    page = unescape((await owner.get(f"{PAGE}/{qbo.connection_id}/records/{invoice_row.id}")).text)
    assert "Needs reconnect:" in page


# ----------------------------------------------------------------------------- item 5


async def test_issue15_item5_auto_sync_starts_off_and_setup_leads_step_by_step(owner, session, biz) -> None:
    response, _ = await consent(owner, "quickbooks")
    assert response.status_code == 303, response.text
    conn = await session.scalar(select(Connection).where(Connection.provider == "quickbooks"))
    assert conn.auto_sync is False  # off until the accounts are mapped and the test sync looks right

    html = (await owner.get(PAGE)).text
    assert 'data-next-step="mapping"' in html and "Off: only Sync Now sends" in html

    conn.settings = {"account_mapping": dict(MAPPING)}
    await session.commit()
    html = (await owner.get(PAGE)).text
    assert 'data-next-step="test_sync"' in html and f"{PAGE}/{conn.id}/test-sync" in html

    r = await owner.submit(f"{PAGE}/{conn.id}/test-sync", {"amount": "1.00"})
    assert r.status_code == 200, r.text
    assert "Everything landed" in r.text
    # The test page offers the switch that is off, and says nothing of turning on what is on.
    assert 'data-auto-sync-state="off"' in r.text and f'action="{PAGE}/{conn.id}/auto-sync"' in r.text
    html = (await owner.get(PAGE)).text
    assert 'data-next-step="auto_sync"' in html
    r = await owner.submit(f"{PAGE}/{conn.id}/auto-sync", {"enabled": "on"})
    assert r.status_code == 303
    page = await owner.get(f"{PAGE}/{conn.id}/test-sync")
    assert 'data-auto-sync-state="on"' in page.text and "Auto-Sync is already on" in page.text
    assert "turn Auto-Sync on" not in page.text
    assert "data-next-step" not in (await owner.get(PAGE)).text
