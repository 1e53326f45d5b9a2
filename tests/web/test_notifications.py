"""Alerts: the notifications list, the dashboard banner, email preferences and the demo mailbox."""

from __future__ import annotations

import re

from sqlalchemy import select

from fieldhub.db import utcnow
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.service import mark_needs_reauth
from fieldhub.hub.notify import notify
from fieldhub.hub.notify.email import deliver_pending
from fieldhub.hub.notify.models import Notification, OutboundEmail
from fieldhub.hub.sync.models import LedgerRow, LedgerState


async def _connection(session, biz, status=ConnectionStatus.CONNECTED) -> Connection:
    conn = Connection(
        tenant_id=biz.tenant.id,
        provider="quickbooks",
        account_id="9341453050001234",
        account_name="Riverbend Plumbing & Heating",
        status=status,
        settings={},
        connected_at=utcnow(),
    )
    session.add(conn)
    await session.commit()
    return conn


async def test_banner_appears_for_needs_reauth_with_a_link_to_fix(owner, session, biz) -> None:
    page = await owner.get("/")
    assert "alert-banner" not in page.text
    conn = await _connection(session, biz)
    await mark_needs_reauth(session, conn, "QuickBooks stopped accepting our access.")
    await session.commit()
    page = await owner.get("/")
    assert "alert-banner" in page.text and "needs to be reconnected" in page.text
    assert 'href="/settings/integrations/quickbooks"' in page.text


async def test_banner_for_failed_records_links_to_the_failed_list(owner, session, biz) -> None:
    conn = await _connection(session, biz)
    session.add(
        LedgerRow(
            tenant_id=biz.tenant.id, connection_id=conn.id, entity="invoice", local_id=1, state=LedgerState.FAILED
        )
    )
    await session.commit()
    page = await owner.get("/")
    assert "1 record failed to sync" in page.text
    assert f"/settings/integrations/quickbooks/{conn.id}/records?state=failed" in page.text


async def test_banner_is_not_shown_to_a_technician(client, session, biz) -> None:
    conn = await _connection(session, biz, ConnectionStatus.NEEDS_REAUTH)
    assert conn.id
    await client.login(biz.tech.email)
    assert "alert-banner" not in (await client.get("/")).text
    assert (await client.get("/notifications")).status_code == 403


async def test_notifications_list_and_mark_read(owner, session, biz, other_biz) -> None:
    mine = await notify(session, biz.tenant.id, "sync.failed", "2 invoices failed", "Invalid tax rate", "/x")
    theirs = await notify(session, other_biz.tenant.id, "sync.failed", "Not yours", "")
    await session.commit()
    page = await owner.get("/notifications")
    assert "2 invoices failed" in page.text and "Not yours" not in page.text
    assert (await owner.submit(f"/notifications/{theirs.id}/read")).status_code == 404
    r = await owner.submit(f"/notifications/{mine.id}/read")
    assert r.status_code == 303
    await session.refresh(mine)
    await session.refresh(theirs)
    assert mine.read_at is not None and theirs.read_at is None


async def test_email_preferences_are_respected_and_the_demo_mailbox_receives_mail(
    owner, client, make_client, session, biz, app
) -> None:
    # The admin opts out of sync failures by email; the owner keeps the default (every alert).
    async with make_client() as admin:
        await admin.login(biz.admin.email)
        page = await admin.get("/settings/notifications")
        assert 'value="sync.failed" checked' in page.text
        r = await admin.submit("/settings/notifications", {"email_kinds": ["connection.needs_reauth"]})
        assert r.status_code == 303
        page = await admin.get("/settings/notifications")
        assert 'value="sync.failed" checked' not in page.text
    await notify(session, biz.tenant.id, "sync.failed", "3 payments failed to sync", "Account not found", "/fix")
    await session.commit()
    await deliver_pending(app.state.sessionmaker, app.state.settings)
    rows = list(await session.scalars(select(OutboundEmail).where(OutboundEmail.tenant_id == biz.tenant.id)))
    assert {r.to_address for r in rows} == {biz.owner.email}
    [mail] = rows
    await session.refresh(mail)
    assert mail.sent_at is not None and mail.transport == "mailbox"
    assert "Account not found" in mail.body and "/fix" in mail.body
    box = await owner.get("/dev/mailbox")
    assert box.status_code == 200 and "3 payments failed to sync" in box.text and biz.owner.email in box.text
    # A technician never gets alert email by default.
    assert biz.tech.email not in box.text


async def test_mailbox_is_owner_admin_only(client, biz) -> None:
    await client.login(biz.tech.email)
    assert (await client.get("/dev/mailbox")).status_code == 403


async def test_needs_reauth_is_emailed_once(session, biz, app) -> None:
    conn = await _connection(session, biz)
    await mark_needs_reauth(session, conn, "gone")
    await mark_needs_reauth(session, conn, "gone")  # already paused with the same reason: no second alert
    await session.commit()
    assert len(list(await session.scalars(select(Notification)))) == 1
    emails = list(await session.scalars(select(OutboundEmail)))
    assert {e.to_address for e in emails} == {biz.owner.email, biz.admin.email}


async def test_the_mail_pump_delivers_after_commit(session, biz, app) -> None:
    import asyncio

    await notify(session, biz.tenant.id, "connection.needs_reauth", "Reconnect QuickBooks", "gone")
    await session.commit()
    for _ in range(100):
        rows = list(await session.scalars(select(OutboundEmail).execution_options(populate_existing=True)))
        if rows and all(r.sent_at for r in rows):
            break
        await asyncio.sleep(0.05)
    assert rows and all(r.transport == "mailbox" for r in rows)


async def test_issue15_item8_the_demo_mailbox_is_linked_where_emails_are_mentioned(owner, session, biz, make_client):
    """In demo (and test) mode no email leaves: the nav, the invoice's "sent" notice and the email pages link the
    mailbox they go to instead; a technician, who can't open it, is not shown it."""
    from fieldhub.core.customers.service import create_customer
    from fieldhub.core.invoices.service import create_invoice

    customer = await create_customer(session, biz.tenant.id, {"display_name": "Ada", "email": "ada@example.com"})
    invoice = await create_invoice(
        session, biz.tenant.id, {"customer_id": customer.id, "lines": [{"description": "Visit", "unit_price": "90"}]}
    )
    await session.commit()
    r = await owner.submit(f"/invoices/{invoice.id}/send", follow_redirects=True)
    assert r.status_code == 200
    sent = re.search(r"<div[^>]*data-sent-notice>(.*?)</div>", r.text, re.S)
    assert sent and "ada@example.com" in sent[1] and 'href="/dev/mailbox"' in sent[1]
    assert 'class="nav " href="/dev/mailbox"' in r.text and "Demo mailbox" in r.text
    for url in ("/settings/notifications", "/notifications"):
        assert 'href="/dev/mailbox"' in (await owner.get(url)).text, url
    mailbox = await owner.get("/dev/mailbox")
    assert mailbox.status_code == 200 and "ada@example.com" in mailbox.text

    async with make_client() as tech:
        await tech.login(biz.tech.email)
        assert "/dev/mailbox" not in (await tech.get(f"/invoices/{invoice.id}?msg=sent")).text
