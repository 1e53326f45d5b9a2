"""Subcontractors and sub-tickets: the only writer of their tables, per tenant.

Assigning, re-assigning and cancelling a sub-ticket each record a domain event in the same transaction;
hub/notify/subticket_mail.py turns those into the emails (to the subcontractor and the owner) queued in that
transaction too, so work is never given without its email, nor emailed without being given.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import record_event
from fieldhub.core.jobs.models import Job
from fieldhub.core.subcontractors.models import Subcontractor, SubTicket, SubTicketStatus
from fieldhub.core.subcontractors.schemas import SUBCONTRACTOR_FIELDS, SubcontractorIn, SubTicketIn
from fieldhub.core.validation import parse
from fieldhub.db import utcnow

SUBCONTRACTOR = "subcontractor"
SUB_TICKET = "sub_ticket"
CLOSED = (SubTicketStatus.DONE, SubTicketStatus.CANCELLED)


def _token() -> str:
    return secrets.token_urlsafe(24)


# ---------------------------------------------------------------- subcontractors


async def list_subcontractors(
    session: AsyncSession, tenant_id: int, *, active: bool | None = None
) -> list[Subcontractor]:
    stmt = select(Subcontractor).where(Subcontractor.tenant_id == tenant_id)
    if active is not None:
        stmt = stmt.where(Subcontractor.active.is_(active))
    return list(await session.scalars(stmt.order_by(Subcontractor.company, Subcontractor.id)))


async def get_subcontractor(session: AsyncSession, tenant_id: int, subcontractor_id: int) -> Subcontractor:
    """Another tenant's subcontractor is NotFound, exactly like a missing one."""
    found = await session.scalar(
        select(Subcontractor).where(Subcontractor.id == subcontractor_id, Subcontractor.tenant_id == tenant_id)
    )
    if found is None:
        raise NotFound(SUBCONTRACTOR, subcontractor_id)
    return found


async def create_subcontractor(
    session: AsyncSession, tenant_id: int, data: SubcontractorIn | Mapping[str, Any]
) -> Subcontractor:
    values = parse(SubcontractorIn, data)
    row = Subcontractor(tenant_id=tenant_id, version=1, **values.model_dump())
    session.add(row)
    await session.flush()
    await record_event(session, SUBCONTRACTOR, row, "created", {"company": row.company})
    return row


async def update_subcontractor(
    session: AsyncSession, tenant_id: int, subcontractor_id: int, data: SubcontractorIn | Mapping[str, Any]
) -> Subcontractor:
    """Only the fields present in `data` change; the result is validated whole, then written."""
    row = await get_subcontractor(session, tenant_id, subcontractor_id)
    given = data.model_dump(exclude_unset=True) if isinstance(data, SubcontractorIn) else dict(data)
    current = {name: getattr(row, name) for name in SUBCONTRACTOR_FIELDS}
    values = parse(SubcontractorIn, {**current, **{k: v for k, v in given.items() if k in SUBCONTRACTOR_FIELDS}})
    changed = [name for name in SUBCONTRACTOR_FIELDS if getattr(values, name) != getattr(row, name)]
    if changed:
        for name in changed:
            setattr(row, name, getattr(values, name))
        row.version += 1
        await session.flush()
        await record_event(session, SUBCONTRACTOR, row, "updated", {"changed": changed})
    return row


# ---------------------------------------------------------------- sub-tickets


async def list_sub_tickets(session: AsyncSession, tenant_id: int, job_id: int) -> list[SubTicket]:
    rows = await session.scalars(
        select(SubTicket).where(SubTicket.tenant_id == tenant_id, SubTicket.job_id == job_id).order_by(SubTicket.id)
    )
    return list(rows)


async def get_sub_ticket(session: AsyncSession, tenant_id: int, sub_ticket_id: int) -> SubTicket:
    found = await session.scalar(
        select(SubTicket).where(SubTicket.id == sub_ticket_id, SubTicket.tenant_id == tenant_id)
    )
    if found is None:
        raise NotFound(SUB_TICKET, sub_ticket_id)
    return found


async def by_token(session: AsyncSession, token: str) -> SubTicket | None:
    """The sub-ticket a subcontractor's private link names, if it is still theirs to see."""
    if not token or len(token) > 64:
        return None
    found = await session.scalar(select(SubTicket).where(SubTicket.public_token == token))
    if found is None or found.subcontractor_id is None:
        return None
    return found


def _data(ticket: SubTicket, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": ticket.job_id,
        "subcontractor_id": ticket.subcontractor_id,
        "status": str(ticket.status),
        "scheduled_on": ticket.scheduled_on.isoformat(),
        "price": str(ticket.price),
        **extra,
    }


async def create_sub_ticket(
    session: AsyncSession, tenant_id: int, job_id: int, data: SubTicketIn | Mapping[str, Any]
) -> SubTicket:
    """A piece of the job; given a subcontractor, it is assigned (and both sides emailed) at once."""
    values = parse(SubTicketIn, data)
    job = await session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound("job", job_id)
    ticket = SubTicket(
        tenant_id=tenant_id,
        version=1,
        job_id=job.id,
        scope=values.scope,
        scheduled_on=values.scheduled_on,
        price=values.price,
        public_token=_token(),
    )
    session.add(ticket)
    await session.flush()
    await record_event(session, SUB_TICKET, ticket, "created", _data(ticket))
    if values.subcontractor_id is not None:
        await assign(session, tenant_id, ticket.id, values.subcontractor_id)
    return ticket


async def assign(session: AsyncSession, tenant_id: int, sub_ticket_id: int, subcontractor_id: int) -> SubTicket:
    """Give the sub-ticket to a subcontractor. To someone else than before, it is a re-assignment: the one taken
    off is told and their link stops working; the same one again changes nothing (no second email)."""
    ticket = await get_sub_ticket(session, tenant_id, sub_ticket_id)
    if ticket.status in CLOSED:
        raise ValidationFailed.one("subcontractor_id", f"This sub-ticket is {ticket.status}; it can't be assigned.")
    sub = await get_subcontractor(session, tenant_id, subcontractor_id)
    if not sub.active:
        raise ValidationFailed.one("subcontractor_id", f"{sub.company} is inactive; choose another subcontractor.")
    previous = ticket.subcontractor_id
    if previous == sub.id:
        return ticket
    ticket.subcontractor_id = sub.id
    ticket.status = SubTicketStatus.ASSIGNED
    ticket.assigned_at = utcnow()
    ticket.public_token = _token()
    ticket.version += 1
    await session.flush()
    await session.refresh(ticket, ["subcontractor"])
    await record_event(
        session, SUB_TICKET, ticket, "reassigned" if previous else "assigned", _data(ticket, previous_id=previous)
    )
    return ticket


async def cancel(session: AsyncSession, tenant_id: int, sub_ticket_id: int) -> SubTicket:
    ticket = await get_sub_ticket(session, tenant_id, sub_ticket_id)
    if ticket.status in CLOSED:
        raise ValidationFailed.one("status", f"This sub-ticket is already {ticket.status}.")
    ticket.status = SubTicketStatus.CANCELLED
    ticket.version += 1
    await session.flush()
    await record_event(session, SUB_TICKET, ticket, "cancelled", _data(ticket))
    return ticket


async def mark_done(session: AsyncSession, ticket: SubTicket) -> SubTicket:
    """The subcontractor says the work is done (from their private link)."""
    if ticket.status != SubTicketStatus.ASSIGNED:
        raise ValidationFailed.one("status", f"This sub-ticket is {ticket.status}; it can't be marked done.")
    ticket.status = SubTicketStatus.DONE
    ticket.done_at = utcnow()
    ticket.version += 1
    await session.flush()
    await record_event(session, SUB_TICKET, ticket, "done", _data(ticket))
    return ticket
