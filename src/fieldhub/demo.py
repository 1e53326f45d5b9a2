"""The demo business: loaded by `make demo`, idempotent (a second run adds nothing).

Every record goes through the core services, so the demo has the same events, versions and totals as
real use. Each section only runs when the business has none of its records yet, which makes a second run
a no-op and lets an older demo database gain the sections it lacks. A seeded random.Random picks names,
quantities and amounts, so every load builds the same business (dates follow today).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.items.service import create_item, create_tax_rate
from fieldhub.core.jobs import service as jobs
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock
from fieldhub.core.money import to_money
from fieldhub.core.payments.models import Payment, PaymentMethod
from fieldhub.core.subcontractors import service as subcontractors
from fieldhub.core.subcontractors.models import Subcontractor
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.settings import Settings

DEMO_SLUG = "demo"
DEMO_PASSWORD = "fieldhub-demo"  # demo data only; printed by `make demo`
DEMO_SEED = 20240611
DEMO_USERS = [
    ("owner@example.com", "Olivia Owner", Role.OWNER, "#10b981"),
    ("admin@example.com", "Adam Admin", Role.ADMIN, "#8b5cf6"),
    ("dispatch@example.com", "Dana Dispatcher", Role.DISPATCHER, "#f59e0b"),
    ("tech@example.com", "Tom Technician", Role.TECHNICIAN, "#3b82f6"),
    ("tech2@example.com", "Tara Technician", Role.TECHNICIAN, "#ec4899"),
    ("tech3@example.com", "Theo Technician", Role.TECHNICIAN, "#14b8a6"),
]

# Riverbend works the Chicago suburbs (the tenant's default time zone is America/Chicago).
TOWNS = [
    ("Evanston", "60201"),
    ("Oak Park", "60302"),
    ("Naperville", "60540"),
    ("Skokie", "60076"),
    ("Wilmette", "60091"),
    ("Arlington Heights", "60004"),
    ("Des Plaines", "60016"),
    ("Park Ridge", "60068"),
    ("Glenview", "60025"),
    ("Schaumburg", "60173"),
    ("Downers Grove", "60515"),
    ("La Grange", "60525"),
]
STREETS = [
    "Maple Ave",
    "Oak St",
    "Ridge Rd",
    "Central St",
    "Lake Ave",
    "Chicago Ave",
    "Greenwood Ave",
    "Prospect Ave",
    "Washington St",
    "Elm St",
    "Hawthorne Ln",
    "Sheridan Rd",
    "Grove St",
    "Linden Ave",
]
FIRST = ["Maria", "James", "Linda", "Robert", "Patricia", "Michael", "Jennifer", "David", "Susan", "Daniel",
         "Karen", "Thomas", "Nancy", "Kevin", "Angela", "Brian", "Rosa", "Samuel", "Helen", "Marcus"]  # fmt: skip
LAST = ["Kowalski", "Nguyen", "Okafor", "Garcia", "Schmidt", "Johnson", "Patel", "O'Brien", "Novak", "Washington",
        "Rivera", "Lindqvist", "Murphy", "Hernandez", "Kim", "Bauer", "Haddad", "Castillo"]  # fmt: skip
COMPANIES = [
    "Lakeview Property Management",
    "Prairie Dental Group",
    "Elm Street Bakery",
    "Northshore Laundromat",
    "St. Brendan's Parish Hall",
]
ITEMS: list[dict[str, Any]] = [
    {"name": "Service call & diagnosis", "unit_price": "89.00", "kind": "service", "sku": "SVC-CALL"},
    {"name": "Labor (per hour)", "unit_price": "115.00", "kind": "service", "sku": "LAB-HR"},
    {"name": "Drain cleaning", "unit_price": "189.00", "kind": "service", "sku": "SVC-DRAIN"},
    {"name": "Water heater installation", "unit_price": "650.00", "kind": "service", "sku": "SVC-WH-INST"},
    {"name": "Furnace tune-up", "unit_price": "129.00", "kind": "service", "sku": "SVC-FURN"},
    {"name": "AC tune-up", "unit_price": "129.00", "kind": "service", "sku": "SVC-AC"},
    {"name": "Sewer camera inspection", "unit_price": "275.00", "kind": "service", "sku": "SVC-CAM"},
    {"name": "After-hours emergency fee", "unit_price": "150.00", "kind": "service", "sku": "SVC-EMERG"},
    {"name": "Faucet installation", "unit_price": "145.00", "kind": "service", "sku": "SVC-FAUCET"},
    {"name": "Toilet installation", "unit_price": "225.00", "kind": "service", "sku": "SVC-TOILET"},
    {"name": "50-gal gas water heater", "unit_price": "1149.00", "kind": "product", "taxable": True, "sku": "WH-50G"},
    {"name": "Garbage disposal, 1/2 HP", "unit_price": "189.99", "kind": "product", "taxable": True, "sku": "GD-05"},
    {"name": "Furnace filter 16x25x1", "unit_price": "24.50", "kind": "product", "taxable": True, "sku": "FLT-1625"},
    {"name": "Kitchen faucet, pull-down", "unit_price": "219.00", "kind": "product", "taxable": True, "sku": "FCT-KPD"},
    {"name": "Pressure relief valve", "unit_price": "32.75", "kind": "product", "taxable": True, "sku": "VLV-TPR"},
]
TAX_RATES = [
    {"name": "Cook County combined", "rate": "10.25", "agency": "Illinois Department of Revenue"},
    {"name": "DuPage County combined", "rate": "7.00", "agency": "Illinois Department of Revenue"},
]
# 40 invoices; one PAID invoice is later partly refunded and becomes PARTIALLY_PAID.
INVOICE_PLAN = (
    [InvoiceStatus.DRAFT] * 6
    + [InvoiceStatus.OPEN] * 5
    + [InvoiceStatus.SENT] * 8
    + [InvoiceStatus.PARTIALLY_PAID] * 6
    + [InvoiceStatus.PAID] * 12
    + [InvoiceStatus.VOID] * 3
)
ESTIMATE_PLAN = ["draft"] * 3 + ["sent"] * 3 + ["approved"] * 3 + ["declined"]
METHODS = [PaymentMethod.CARD, PaymentMethod.ACH, PaymentMethod.CHECK, PaymentMethod.CASH]
# (job title, the item its work is) for the week's jobs.
JOB_KINDS = [
    ("Water heater replacement", "Water heater installation"),
    ("Clogged kitchen drain", "Drain cleaning"),
    ("Furnace tune-up", "Furnace tune-up"),
    ("AC tune-up", "AC tune-up"),
    ("Sewer line camera inspection", "Sewer camera inspection"),
    ("Leaking faucet", "Faucet installation"),
    ("Running toilet", "Toilet installation"),
    ("No hot water: diagnose", "Service call & diagnosis"),
]


# Companies the demo business hands work to (sub-tickets on a job's page email them).
SUBCONTRACTORS = [
    {
        "company": "Bright Spark Electric",
        "contact_name": "Sam Ortega",
        "email": "jobs@brightspark.example.com",
        "phone": "(512) 555-0142",
        "trade": "Electrical",
    },
    {
        "company": "Hill Country Excavation",
        "contact_name": "Lee Barnes",
        "email": "dispatch@hcexcavation.example.com",
        "phone": "(512) 555-0177",
        "trade": "Excavation",
    },
]


async def _count(session: AsyncSession, model: Any, tenant_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)) or 0


async def _ensure_business(session: AsyncSession) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
    if tenant is None:
        tenant = await accounts.create_tenant(
            session, name="Riverbend Plumbing & Heating", slug=DEMO_SLUG, email="office@riverbend.example"
        )
    for email, name, role, color in DEMO_USERS:
        if await session.scalar(select(User.id).where(User.email == email)) is None:
            await accounts.create_user(
                session, tenant=tenant, email=email, name=name, role=role, password=DEMO_PASSWORD, color=color
            )
    return tenant


async def _customers(session: AsyncSession, tenant: Tenant, rng: random.Random) -> None:
    used: set[str] = set()
    for n in range(25):
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in used:
                used.add(name)
                break
        company = COMPANIES[n // 5] if n % 5 == 4 else ""
        town, postal = rng.choice(TOWNS)
        street = f"{rng.randint(100, 2999)} {rng.choice(STREETS)}"
        data = {
            "display_name": company or name,
            "company": company,
            "email": f"{name.lower().replace(' ', '.').replace(chr(39), '')}@example.com",
            "phone": f"(847) 555-{rng.randint(100, 999):03d}{n % 10}",
            "billing_line1": street,
            "billing_city": town,
            "billing_region": "IL",
            "billing_postal_code": postal,
            "notes": f"Contact: {name}" if company else "",
        }
        if n % 7 == 3:
            # A landlord billed at home for a rental it owns elsewhere.
            town2, postal2 = rng.choice(TOWNS)
            data |= {
                "service_line1": f"{rng.randint(100, 2999)} {rng.choice(STREETS)}",
                "service_line2": f"Unit {rng.randint(1, 4)}{rng.choice('ABC')}",
                "service_city": town2,
                "service_region": "IL",
                "service_postal_code": postal2,
            }
        await create_customer(session, tenant.id, data)


def _lines(rng: random.Random, items: Sequence[Item]) -> list[dict[str, Any]]:
    services = [i for i in items if i.kind == "service"]
    products = [i for i in items if i.kind == "product"]
    picked = [rng.choice(services)]
    if rng.random() < 0.6:
        picked.append(rng.choice(products))
    if rng.random() < 0.5:
        picked.append(next(i for i in services if i.sku == "LAB-HR"))
    lines = []
    for item in dict.fromkeys(picked):
        quantity = Decimal(rng.choice(["1", "1", "2", "1.5", "2.5", "3"])) if item.sku == "LAB-HR" else Decimal(1)
        if item.sku == "FLT-1625":
            quantity = Decimal(rng.randint(2, 6))
        lines.append({"item_id": item.id, "quantity": str(quantity)})
    return lines


async def _invoices(session: AsyncSession, tenant: Tenant, rng: random.Random, today: date) -> None:
    customers = list(await session.scalars(select(Customer).where(Customer.tenant_id == tenant.id)))
    items = list(await session.scalars(select(Item).where(Item.tenant_id == tenant.id).order_by(Item.id)))
    rates = list(await session.scalars(select(TaxRate).where(TaxRate.tenant_id == tenant.id).order_by(TaxRate.id)))
    paid_ids: list[int] = []
    for n, target in enumerate(INVOICE_PLAN):
        issued = today - timedelta(days=rng.randint(0 if target == InvoiceStatus.DRAFT else 3, 90))
        invoice = await invoices.create_invoice(
            session,
            tenant.id,
            {
                "customer_id": rng.choice(customers).id,
                "issue_date": issued,
                "due_date": issued + timedelta(days=30),
                "tax_rate_id": rates[n % len(rates)].id if rates and n % 3 else None,
                "lines": _lines(rng, items),
                "memo": "Thank you for choosing Riverbend." if n % 4 == 0 else "",
                "status": "DRAFT" if target == InvoiceStatus.DRAFT else "OPEN",
            },
        )
        if target in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN):
            continue
        if target == InvoiceStatus.VOID:
            await invoices.void_invoice(session, tenant.id, invoice.id)
            continue
        await invoices.send_invoice(session, tenant.id, invoice.id)
        if target == InvoiceStatus.SENT:
            continue
        paid_on = min(today, issued + timedelta(days=rng.randint(0, 20)))
        if target == InvoiceStatus.PARTIALLY_PAID:
            share = Decimal(rng.choice(["0.25", "0.4", "0.5", "0.6"]))
            amount = to_money(invoice.total * share)
            await invoices.record_payment(
                session,
                tenant.id,
                invoice.id,
                {
                    "amount": str(amount),
                    "received_on": paid_on,
                    "method": METHODS[n % len(METHODS)],
                    "reference": "Deposit",
                },
            )
            continue
        # PAID: some in one payment, some in two, by different methods.
        if n % 3 == 0:
            first = to_money(invoice.total / 2)
            await invoices.record_payment(
                session,
                tenant.id,
                invoice.id,
                {
                    "amount": str(first),
                    "received_on": issued,
                    "method": PaymentMethod.CHECK,
                    "reference": f"Check {1040 + n}",
                },
            )
            rest = invoice.total - first
            await invoices.record_payment(
                session,
                tenant.id,
                invoice.id,
                {"amount": str(rest), "received_on": paid_on, "method": PaymentMethod.CARD},
            )
        else:
            await invoices.record_payment(
                session,
                tenant.id,
                invoice.id,
                {"amount": str(invoice.total), "received_on": paid_on, "method": METHODS[n % len(METHODS)]},
            )
        paid_ids.append(invoice.id)
    # One refund: a returned part on a paid invoice (which makes it partially paid again).
    if paid_ids:
        payment = await session.scalar(
            select(Payment).where(Payment.invoice_id == paid_ids[0]).order_by(Payment.id.desc())
        )
        assert payment is not None
        await invoices.refund_payment(
            session,
            tenant.id,
            payment.id,
            {"amount": str(min(payment.amount, Decimal("32.75"))), "reason": "Customer returned an unused part"},
        )


async def _estimates(session: AsyncSession, tenant: Tenant, rng: random.Random, today: date) -> None:
    customers = list(await session.scalars(select(Customer).where(Customer.tenant_id == tenant.id)))
    items = list(await session.scalars(select(Item).where(Item.tenant_id == tenant.id).order_by(Item.id)))
    rates = list(await session.scalars(select(TaxRate).where(TaxRate.tenant_id == tenant.id).order_by(TaxRate.id)))
    for n, target in enumerate(ESTIMATE_PLAN):
        issued = today - timedelta(days=rng.randint(0, 45))
        est = await estimates.create_estimate(
            session,
            tenant.id,
            {
                "customer_id": rng.choice(customers).id,
                "issue_date": issued,
                "expires_on": issued + timedelta(days=30),
                "tax_rate_id": rates[n % len(rates)].id if rates else None,
                "lines": _lines(rng, items),
                "memo": "Price good for 30 days. Permit fees, if any, are extra.",
            },
        )
        if target == "draft":
            continue
        await estimates.send_estimate(session, tenant.id, est.id)
        if target == "approved":
            await estimates.approve_estimate(session, tenant.id, est.id)
        elif target == "declined":
            await estimates.decline_estimate(session, tenant.id, est.id)


async def _week_of_jobs(session: AsyncSession, tenant: Tenant, rng: random.Random, now: datetime) -> None:
    zone = ZoneInfo(tenant.timezone)
    monday = jobs.week_start(now.astimezone(zone).date())
    customers = list(await session.scalars(select(Customer).where(Customer.tenant_id == tenant.id)))
    techs = await jobs.list_technicians(session, tenant.id)
    slots = [(time(8, 0), 2), (time(10, 30), 2), (time(13, 0), 2), (time(15, 30), 1)]
    for offset in range(6):  # Monday to Saturday; Saturday is the on-call day
        day = monday + timedelta(days=offset)
        for tech_index, tech in enumerate(techs):
            day_slots = slots[:1] if offset == 5 else slots
            for slot_index, (start_at, hours) in enumerate(day_slots):
                if offset == 5 and tech_index:
                    break  # one technician on call
                if offset < 5 and (offset + tech_index + slot_index) % 3 == 2:
                    continue  # gaps: not every slot is booked
                title, _ = rng.choice(JOB_KINDS)
                start = datetime.combine(day, start_at, zone)
                end = start + timedelta(hours=hours, minutes=rng.choice([0, 0, 30]) if hours == 2 else 0)
                customer = rng.choice(customers)
                # Saturday's on-call job takes two: the only day nobody else is booked.
                helpers = [tech] + ([techs[(tech_index + 1) % len(techs)]] if offset == 5 and len(techs) > 1 else [])
                job = await jobs.create_job(
                    session,
                    tenant.id,
                    {
                        "customer_id": customer.id,
                        "title": title,
                        "description": "Customer reports the problem started this week." if slot_index == 1 else "",
                        "scheduled_start": start,
                        "scheduled_end": end,
                        "technician_ids": [u.id for u in helpers],
                    },
                )
                if end <= now:
                    await jobs.set_job_status(session, tenant.id, job.id, JobStatus.COMPLETED)
                elif start <= now:
                    await jobs.set_job_status(session, tenant.id, job.id, JobStatus.IN_PROGRESS)
                elif rng.random() < 0.06:
                    await jobs.set_job_status(session, tenant.id, job.id, JobStatus.CANCELLED)
    if len(techs) >= 2:
        blocks = [
            (techs[1 % len(techs)], monday + timedelta(days=2), time(12, 0), time(13, 30), "Dentist appointment"),
            (techs[2 % len(techs)], monday + timedelta(days=4), time(8, 0), time(12, 0), "Gas-fitting certification"),
        ]
        for tech, day, start_at, end_at, reason in blocks:
            await jobs.create_time_block(
                session,
                tenant.id,
                {
                    "user_id": tech.id,
                    "starts_at": datetime.combine(day, start_at, zone),
                    "ends_at": datetime.combine(day, end_at, zone),
                    "reason": reason,
                },
            )


async def fill_demo(session: AsyncSession, tenant: Tenant, now: datetime | None = None) -> list[str]:
    """Add each missing section to the demo business; returns the names of the sections added."""
    now = now or datetime.now(UTC)
    today = now.astimezone(ZoneInfo(tenant.timezone)).date()
    added: list[str] = []
    # One generator per section: adding one section later does not change what the others build.
    if not await _count(session, Customer, tenant.id):
        await _customers(session, tenant, random.Random(f"{DEMO_SEED}-customers"))
        added.append("customers")
    if not await _count(session, Item, tenant.id):
        for data in ITEMS:
            await create_item(session, tenant.id, data)
        added.append("items")
    if not await _count(session, TaxRate, tenant.id):
        for data in TAX_RATES:
            await create_tax_rate(session, tenant.id, data)
        added.append("tax_rates")
    if not await _count(session, Invoice, tenant.id):
        await _invoices(session, tenant, random.Random(f"{DEMO_SEED}-invoices"), today)
        added.append("invoices")
    if not await _count(session, Estimate, tenant.id):
        await _estimates(session, tenant, random.Random(f"{DEMO_SEED}-estimates"), today)
        added.append("estimates")
    if not await _count(session, Job, tenant.id) and not await _count(session, TimeBlock, tenant.id):
        await _week_of_jobs(session, tenant, random.Random(f"{DEMO_SEED}-jobs"), now)
        added.append("jobs")
    if not await _count(session, Subcontractor, tenant.id):
        for data in SUBCONTRACTORS:
            await subcontractors.create_subcontractor(session, tenant.id, data)
        added.append("subcontractors")
    return added


async def load_demo(settings: Settings, now: datetime | None = None) -> bool:
    """Returns False when the demo business was already complete (nothing added)."""
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            existed = await session.scalar(select(Tenant.id).where(Tenant.slug == DEMO_SLUG)) is not None
            users_before = await session.scalar(select(func.count()).select_from(User)) or 0
            tenant = await _ensure_business(session)
            added = await fill_demo(session, tenant, now)
            users_after = await session.scalar(select(func.count()).select_from(User)) or 0
            await session.commit()
            return not existed or bool(added) or users_after != users_before
    finally:
        await engine.dispose()
