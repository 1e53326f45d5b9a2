"""The Leads inbox's flows: receive a lead or a message (any order, any number of times), reply, accept, decline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.leads.models import Lead, LeadMessage, LeadStatus
from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.estimates.service import create_estimate
from fieldhub.core.jobs.service import create_job
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.notify import notify
from fieldhub.log import get_logger

log = get_logger(__name__)
NOTIFY_KIND = "lead.new"


@dataclass(frozen=True)
class IncomingLead:
    """A lead as its provider describes it, in the inbox's words."""

    remote_id: str
    customer_name: str = ""
    customer_phone: str = ""
    customer_email: str = ""
    category: str = ""
    description: str = ""
    location: dict[str, Any] = field(default_factory=dict)
    answers: list[dict[str, str]] = field(default_factory=list)
    lead_price: Decimal | None = None
    remote_status: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class IncomingMessage:
    lead_remote_id: str
    remote_id: str
    sender: str  # customer | business
    text: str
    sent_at: datetime
    customer_name: str = ""


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return digits[-10:] if len(digits) >= 10 else digits


async def _lead(session: AsyncSession, conn: Connection, remote_id: str, *, name: str = "") -> tuple[Lead, bool]:
    """The lead for this provider object, made (empty) if this is the first word of it; (lead, made)."""
    query = select(Lead).where(
        Lead.tenant_id == conn.tenant_id, Lead.provider == conn.provider, Lead.remote_id == remote_id
    )
    found = await session.scalar(query)
    if found is not None:
        return found, False
    lead = Lead(
        tenant_id=conn.tenant_id,
        provider=conn.provider,
        connection_id=conn.id,
        remote_id=remote_id,
        customer_name=name,
        details=False,
        received_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(lead)
    except IntegrityError:  # the same lead made at the same moment by another delivery: theirs stands
        found = await session.scalar(query)
        assert found is not None
        return found, False
    return lead, True


async def match_customer(session: AsyncSession, tenant_id: int, phone: str, email: str) -> Customer | None:
    """An existing customer with this email (any case) or this phone number (its digits), else None."""
    if email:
        found = await session.scalar(
            select(Customer)
            .where(Customer.tenant_id == tenant_id, func.lower(Customer.email) == email.strip().lower())
            .order_by(Customer.id)
            .limit(1)
        )
        if found is not None:
            return found
    wanted = _digits(phone)
    if len(wanted) >= 7:
        rows = await session.execute(
            select(Customer.id, Customer.phone).where(Customer.tenant_id == tenant_id, Customer.phone != "")
        )
        for customer_id, their_phone in rows:
            if _digits(their_phone) == wanted:
                return await session.get(Customer, customer_id)
    return None


async def receive_lead(session: AsyncSession, conn: Connection, incoming: IncomingLead) -> bool:
    """File a lead in the inbox: its customer matched by email or phone, else a new one. True if anything changed."""
    lead, _ = await _lead(session, conn, incoming.remote_id)
    if lead.details:
        if incoming.remote_status and incoming.remote_status != lead.remote_status:
            lead.remote_status = incoming.remote_status
            return True
        return False
    lead.details = True
    lead.customer_name = incoming.customer_name or lead.customer_name
    lead.customer_phone = incoming.customer_phone
    lead.customer_email = incoming.customer_email
    lead.category = incoming.category
    lead.description = incoming.description
    lead.location = incoming.location
    lead.answers = incoming.answers
    lead.lead_price = incoming.lead_price
    lead.remote_status = incoming.remote_status
    lead.remote_created_at = incoming.created_at
    customer = await match_customer(session, conn.tenant_id, incoming.customer_phone, incoming.customer_email)
    if customer is None:
        place = incoming.location
        customer = await create_customer(
            session,
            conn.tenant_id,
            {
                "display_name": incoming.customer_name or "Customer from " + registry.get(conn.provider).name,
                "phone": incoming.customer_phone[:40],
                "email": incoming.customer_email,
                "service_city": str(place.get("city", ""))[:100],
                "service_region": str(place.get("state", ""))[:100],
                "service_postal_code": str(place.get("zipCode", ""))[:20],
                "notes": f"From a {registry.get(conn.provider).name} lead.",
            },
        )
    lead.customer_id = customer.id
    await session.flush()
    where = ", ".join(str(v) for v in (incoming.location.get("city"), incoming.location.get("state")) if v)
    await notify(
        session,
        conn.tenant_id,
        NOTIFY_KIND,
        f"New {registry.get(conn.provider).name} lead: {lead.customer_name}",
        " · ".join(part for part in (incoming.category, where) if part),
        link=f"/leads/{lead.id}",
    )
    log.info("leads.received", tenant_id=conn.tenant_id, provider=conn.provider, lead_id=lead.id)
    return True


async def receive_message(session: AsyncSession, conn: Connection, incoming: IncomingMessage) -> bool:
    """Add a message to its lead (made empty if the lead has not come yet); a message already there is skipped."""
    lead, _ = await _lead(session, conn, incoming.lead_remote_id, name=incoming.customer_name)
    return await _add_message(session, lead, incoming)


async def _add_message(session: AsyncSession, lead: Lead, incoming: IncomingMessage) -> bool:
    query = select(LeadMessage.id).where(LeadMessage.lead_id == lead.id, LeadMessage.remote_id == incoming.remote_id)
    if await session.scalar(query) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(
                LeadMessage(
                    tenant_id=lead.tenant_id,
                    lead_id=lead.id,
                    remote_id=incoming.remote_id,
                    sender=incoming.sender,
                    text=incoming.text,
                    sent_at=incoming.sent_at,
                    received_at=utcnow(),
                )
            )
    except IntegrityError:
        return False
    return True


# ---------------------------------------------------------------- the owner's side


async def get_lead(session: AsyncSession, tenant_id: int, lead_id: int) -> Lead:
    lead = await session.scalar(select(Lead).where(Lead.id == lead_id, Lead.tenant_id == tenant_id))
    if lead is None:
        raise NotFound("lead", lead_id)
    return lead


async def inbox(session: AsyncSession, tenant_id: int, *, limit: int = 200) -> list[Lead]:
    return list(
        await session.scalars(
            select(Lead)
            .where(Lead.tenant_id == tenant_id)
            .order_by(Lead.received_at.desc(), Lead.id.desc())
            .limit(limit)
        )
    )


async def customer_of(session: AsyncSession, lead: Lead) -> Customer | None:
    return await session.get(Customer, lead.customer_id) if lead.customer_id else None


async def messages(session: AsyncSession, lead: Lead) -> list[LeadMessage]:
    return list(
        await session.scalars(
            select(LeadMessage).where(LeadMessage.lead_id == lead.id).order_by(LeadMessage.sent_at, LeadMessage.id)
        )
    )


async def reply(session: AsyncSession, env: Any, lead: Lead, text: str) -> LeadMessage | None:
    """Send the owner's reply through the provider and keep it on the lead as the provider recorded it."""
    text = text.strip()
    if not text:
        raise ValidationFailed({"text": "Type a reply first."})
    if len(text) > 4000:
        raise ValidationFailed({"text": "Keep a reply under 4,000 characters."})
    conn = await session.get(Connection, lead.connection_id) if lead.connection_id else None
    if conn is None:
        raise ValidationFailed({"text": f"{registry.get(lead.provider).name} is not connected."})
    module = registry.import_module(lead.provider, "leads")
    if module is None:
        raise ValidationFailed({"text": f"{registry.get(lead.provider).name} takes no replies from fieldhub."})
    sent: IncomingMessage = await module.send_message(env, conn, lead.remote_id, text)
    await _add_message(session, lead, sent)
    if lead.status == LeadStatus.NEW:
        lead.status = LeadStatus.REPLIED
    lead.version += 1
    await session.flush()
    return await session.scalar(
        select(LeadMessage).where(LeadMessage.lead_id == lead.id, LeadMessage.remote_id == sent.remote_id)
    )


def _summary(lead: Lead) -> str:
    lines = [lead.description] if lead.description else []
    lines += [f"{a.get('question', '')}: {a.get('answer', '')}" for a in lead.answers or []]
    return "\n".join(lines)


async def accept(session: AsyncSession, lead: Lead, into: str) -> str:
    """Turn the lead into an estimate (a draft with the request as its line) or a job (tomorrow 9-10 am, business
    time); returns the new record's page. Accepting twice opens what the first made."""
    if lead.customer_id is None:
        raise ValidationFailed({"lead": "The lead's details have not arrived yet."})
    if lead.estimate_id:
        return f"/estimates/{lead.estimate_id}"
    if lead.job_id:
        return f"/schedule/jobs/{lead.job_id}"
    title = lead.category or "Requested work"
    source = registry.get(lead.provider).name
    if into == "job":
        tz = await session.scalar(select(Tenant.timezone).where(Tenant.id == lead.tenant_id)) or "UTC"
        day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=1)
        start = datetime.combine(day, time(9), ZoneInfo(tz))
        job = await create_job(
            session,
            lead.tenant_id,
            {
                "customer_id": lead.customer_id,
                "title": title[:200],
                "description": _summary(lead)[:4000],
                "scheduled_start": start,
                "scheduled_end": start + timedelta(hours=1),
                "notes": f"From a {source} lead.",
            },
        )
        lead.job_id = job.id
        url = f"/schedule/jobs/{job.id}"
    else:
        estimate = await create_estimate(
            session,
            lead.tenant_id,
            {
                "customer_id": lead.customer_id,
                "notes": f"From a {source} lead.\n{_summary(lead)}"[:10_000],
                "lines": [{"description": title[:2000], "quantity": "1", "unit_price": "0.00"}],
            },
        )
        lead.estimate_id = estimate.id
        url = f"/estimates/{estimate.id}"
    lead.status = LeadStatus.ACCEPTED
    lead.version += 1
    await session.flush()
    return url


async def decline(session: AsyncSession, lead: Lead) -> None:
    if lead.status == LeadStatus.ACCEPTED:
        raise ValidationFailed({"lead": "This lead was accepted already."})
    lead.status = LeadStatus.DECLINED
    lead.version += 1
    await session.flush()
