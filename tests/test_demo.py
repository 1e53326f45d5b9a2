"""The demo business loads every kind of record through the services, and a second load adds nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.core.customers.models import Customer
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.core.events import DomainEventRow
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.jobs.models import Job, TimeBlock
from fieldhub.core.jobs.service import week_start
from fieldhub.core.payments.models import Payment, Refund
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.demo import DEMO_SLUG, load_demo
from fieldhub.providers.quickbooks.emulator import US_REALM

MODELS = (User, Customer, Item, TaxRate, Invoice, Payment, Refund, Estimate, Job, TimeBlock, DomainEventRow)


async def _counts(session) -> dict[str, int]:
    return {m.__name__: await session.scalar(select(func.count()).select_from(m)) for m in MODELS}


async def test_demo_loads_everything_once(settings):
    assert await load_demo(settings) is True
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            first = await _counts(session)
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            assert first["Customer"] == 25 and first["Item"] == 15 and first["TaxRate"] == 2
            assert first["Invoice"] == 40 and first["Estimate"] == 10 and first["Refund"] == 1
            techs = list(await session.scalars(select(User).where(User.role == Role.TECHNICIAN)))
            assert len(techs) == 3

            customers = list(await session.scalars(select(Customer)))
            assert all(c.billing_line1 and c.billing_city and c.billing_postal_code for c in customers)
            items = list(await session.scalars(select(Item)))
            assert {i.kind for i in items} == {"service", "product"} and any(i.taxable for i in items)

            statuses = Counter((await session.scalars(select(Invoice.status))).all())
            assert set(statuses) == set(InvoiceStatus), statuses
            methods = set((await session.scalars(select(Payment.method))).all())
            assert len(methods) >= 3, methods
            # Totals add up on every invoice: paid = payments − refunds, balance = total − paid (VOID owes 0).
            for inv in await session.scalars(select(Invoice)):
                paid = await session.scalar(select(func.sum(Payment.amount)).where(Payment.invoice_id == inv.id)) or 0
                back = await session.scalar(select(func.sum(Refund.amount)).where(Refund.invoice_id == inv.id)) or 0
                assert inv.amount_paid == paid - back
                if inv.status != InvoiceStatus.VOID:
                    assert inv.balance == inv.total - inv.amount_paid

            est_statuses = set((await session.scalars(select(Estimate.status))).all())
            assert est_statuses == set(EstimateStatus)

            zone = ZoneInfo(tenant.timezone)
            monday = week_start(datetime.now(UTC).astimezone(zone).date())
            job_rows = list(await session.scalars(select(Job)))
            assert len(job_rows) >= 15
            for job in job_rows:
                local = job.scheduled_start.astimezone(zone).date()
                assert monday <= local < monday + timedelta(days=7)
                assert job.technicians and all(u.role == Role.TECHNICIAN for u in job.technicians)
            assert len({u.id for j in job_rows for u in j.technicians}) == 3
            assert first["TimeBlock"] >= 2
            assert first["DomainEventRow"] > 100  # everything went through the services

        assert await load_demo(settings) is False
        async with make_sessionmaker(engine)() as session:
            assert await _counts(session) == first
    finally:
        await engine.dispose()


async def test_issue15_item8_the_demo_is_one_business(settings, app):
    """The demo tenant, its QuickBooks company, its Stripe account and the first account on every emulator's
    sign-in page are the same business (Riverbend), not a stranger's."""
    await load_demo(settings)
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            owner = await session.scalar(select(User).where(User.tenant_id == tenant.id, User.role == Role.OWNER))
    finally:
        await engine.dispose()
    domain = tenant.email.rpartition("@")[2].split(".")[0]  # "riverbend"
    emulators = app.state.endpoints.emulators
    company = emulators["quickbooks"].companies[US_REALM].seed
    assert company.name == tenant.name and company.email == tenant.email
    stripe = emulators["stripe"].demo_accounts()[0]
    assert stripe["business_profile"]["name"] == tenant.name and domain in stripe["email"]
    checked = []
    for key, emulator in sorted(emulators.items()):
        accounts = getattr(getattr(emulator, "oauth", None), "accounts", None)
        if not accounts:
            continue
        first = accounts[0]
        assert first.name in (tenant.name, owner.name) or tenant.name in first.extra.values(), (key, first)
        assert domain in first.email, (key, first)
        checked.append(key)
    assert len(checked) >= 8, checked
