"""The demo business: loaded by `make demo`, idempotent (a second run adds nothing)."""

from __future__ import annotations

from sqlalchemy import select

from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role, Tenant
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.settings import Settings

DEMO_SLUG = "demo"
DEMO_PASSWORD = "fieldhub-demo"  # demo data only; printed by `make demo`
DEMO_USERS = [
    ("owner@example.com", "Olivia Owner", Role.OWNER, "#10b981"),
    ("admin@example.com", "Adam Admin", Role.ADMIN, "#8b5cf6"),
    ("dispatch@example.com", "Dana Dispatcher", Role.DISPATCHER, "#f59e0b"),
    ("tech@example.com", "Tom Technician", Role.TECHNICIAN, "#3b82f6"),
    ("tech2@example.com", "Tara Technician", Role.TECHNICIAN, "#ec4899"),
    ("tech3@example.com", "Theo Technician", Role.TECHNICIAN, "#14b8a6"),
]


async def load_demo(settings: Settings) -> bool:
    """Returns False when the demo business already exists."""
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            if await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG)):
                return False
            tenant = await accounts.create_tenant(
                session, name="Riverbend Plumbing & Heating", slug=DEMO_SLUG, email="office@riverbend.example"
            )
            for email, name, role, color in DEMO_USERS:
                await accounts.create_user(
                    session,
                    tenant=tenant,
                    email=email,
                    name=name,
                    role=role,
                    password=DEMO_PASSWORD,
                    color=color,
                )
            await session.commit()
            return True
    finally:
        await engine.dispose()
