"""A record QuickBooks refuses raises one "sync.failed" alert per run: in-app, and by email to who wants it."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer
from fieldhub.hub.notify import save_email_kinds
from fieldhub.hub.notify.email import deliver_pending
from fieldhub.hub.notify.models import Notification, OutboundEmail
from fieldhub.hub.sync.models import RunStatus
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup


async def alerts(session, tenant_id: int) -> list[Notification]:
    rows = list(
        await session.scalars(
            select(Notification)
            .where(Notification.tenant_id == tenant_id, Notification.kind == "sync.failed")
            .order_by(Notification.id)
        )
    )
    await session.commit()
    return rows


async def test_a_rejected_record_alerts_in_app_and_by_email_once(
    app, session, owner, biz: Business, other_biz: Business, qbo: QBOSetup
):
    # The admin chose not to get sync failures by email; the owner keeps the default (every alert).
    await save_email_kinds(session, biz.admin, ["connection.needs_reauth"])
    await create_customer(session, biz.tenant.id, {"display_name": "Home Depot"})  # a vendor in QuickBooks
    await create_customer(session, biz.tenant.id, {"display_name": "Fine Fiona"})
    await session.commit()

    run = await qbo.sync()
    assert (run.created, run.failed, run.status) == (1, 1, RunStatus.PARTIAL)
    [alert] = await alerts(session, biz.tenant.id)
    assert alert.title == "1 record failed to sync to QuickBooks Online"
    assert "Home Depot: Customer name conflict: a customer, vendor or employee named “Home Depot”" in alert.body
    assert "Fix: Change the customer's display name in fieldhub" in alert.body
    assert alert.link == f"/settings/integrations/quickbooks/{qbo.connection_id}/records?state=failed"
    assert await alerts(session, other_biz.tenant.id) == []

    # Email: queued in the run's transaction for the owner only, delivered to the demo mailbox.
    # (The app's mail pump, woken by that commit, may be delivering it at this moment: wait for the outcome.)
    for _ in range(100):
        await deliver_pending(app.state.sessionmaker, app.state.settings)
        mails = list(
            await session.scalars(
                select(OutboundEmail)
                .where(OutboundEmail.kind == "sync.failed")
                .execution_options(populate_existing=True)
            )
        )
        await session.commit()
        if all(m.transport for m in mails):
            break
        await asyncio.sleep(0.05)
    assert [(m.to_address, m.transport, m.subject) for m in mails] == [(biz.owner.email, "mailbox", alert.title)]
    assert f"Fix it here: {alert.link}" in mails[0].body
    page = await owner.get("/dev/mailbox")
    assert page.status_code == 200 and alert.title in page.text
    listed = await owner.get("/notifications")
    assert alert.title in listed.text

    # The refused record waits for a person: more runs (Sync Now, the sweep) send nothing and alert nothing.
    assert await qbo.sync() is None
    assert len(await alerts(session, biz.tenant.id)) == 1


async def test_a_run_with_several_refusals_sends_one_alert_that_counts_them(session, biz: Business, qbo: QBOSetup):
    for name in ("Home Depot", "Emily Platt", "Mason Realty"):  # a vendor, an employee, a customer already there
        await create_customer(session, biz.tenant.id, {"display_name": name})
    await session.commit()

    run = await qbo.sync()
    assert (run.failed, run.status) == (3, RunStatus.FAILED)
    [alert] = await alerts(session, biz.tenant.id)
    assert alert.title == "3 records failed to sync to QuickBooks Online"
    assert all(name in alert.body for name in ("Home Depot", "Emily Platt", "Mason Realty"))
    emails = await session.scalar(
        select(func.count()).select_from(OutboundEmail).where(OutboundEmail.kind == "sync.failed")
    )
    assert emails == 2  # owner and admin by default: one email each for the run, not one per record
