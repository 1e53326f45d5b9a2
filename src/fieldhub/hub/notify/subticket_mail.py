"""Sub-ticket emails: when work is given to a subcontractor, taken back or cancelled, both sides are told at once.

`on_domain_event` is subscribed to core events at start (beside invoice_mail): a sub-ticket's `assigned`,
`reassigned` and `cancelled` events queue the emails inside the transaction that made the change, and the
mail pump (hub.notify.email) delivers them right after it commits, retrying what the mail server refuses
for now and telling the owner in the app when a message can't be delivered. `done` (the subcontractor's
own click) is an in-app notification for the business.

The subcontractor's email carries the private link to the sub-ticket (/sub/<token>); it is drawn anew at
each assignment, so a subcontractor taken off the work holds a link that no longer opens.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.core.customers.models import Customer
from fieldhub.core.events import DomainEvent
from fieldhub.core.money import format_money
from fieldhub.core.subcontractors.models import Subcontractor, SubTicket
from fieldhub.hub.notify import MAIL_KEY, notify
from fieldhub.hub.notify.invoice_mail import HUB_URL
from fieldhub.hub.notify.models import OutboundEmail
from fieldhub.log import get_logger

log = get_logger(__name__)
ENTITY = "sub_ticket"
KINDS = ("assigned", "reassigned", "cancelled", "done")


async def on_domain_event(session: AsyncSession, event: DomainEvent) -> None:
    if event.entity != ENTITY or event.kind not in KINDS:
        return
    ticket = await session.scalar(
        select(SubTicket).where(SubTicket.id == event.record_id, SubTicket.tenant_id == event.tenant_id)
    )
    tenant = await session.get(Tenant, event.tenant_id)
    if ticket is None or tenant is None:
        return
    if event.kind == "done":
        await notify(
            session,
            tenant.id,
            "subticket.done",
            f"{_sub_name(ticket.subcontractor)} finished a sub-ticket on {ticket.job.title}",
            ticket.scope[:300],
            f"/schedule/jobs/{ticket.job_id}",
        )
        return
    previous_id = event.data.get("previous_id")
    previous = await session.get(Subcontractor, previous_id) if previous_id else None
    queued = await queue(session, tenant, ticket, event.kind, previous)
    log.info("subticket_mail.queued", tenant_id=tenant.id, sub_ticket_id=ticket.id, kind=event.kind, emails=queued)


def _sub_name(sub: Subcontractor | None) -> str:
    return sub.company if sub is not None else "A subcontractor"


async def _owners(session: AsyncSession, tenant_id: int) -> Sequence[User]:
    rows = await session.scalars(
        select(User).where(User.tenant_id == tenant_id, User.role == Role.OWNER, User.active.is_(True))
    )
    return [u for u in rows if u.email]


def _add(
    session: AsyncSession, tenant_id: int, to: str, kind: str, subject: str, body: str, user_id: int | None = None
) -> None:
    session.add(
        OutboundEmail(tenant_id=tenant_id, user_id=user_id, to_address=to, kind=kind, subject=subject[:300], body=body)
    )


async def queue(
    session: AsyncSession, tenant: Tenant, ticket: SubTicket, kind: str, previous: Subcontractor | None
) -> int:
    """Queue this change's emails; returns how many."""
    from fieldhub.hub.paylinks import contact_words  # imported late: paylinks → connections → notify

    job = ticket.job
    customer = await session.get(Customer, job.customer_id)
    sub = ticket.subcontractor
    contact = contact_words(tenant)
    when = f"{ticket.scheduled_on:%A, %B %-d, %Y}"
    what = [
        f"Job: {job.title}" + (f" for {customer.display_name}" if customer else ""),
        f"Where: {job.address or 'the address will follow'}",
        f"When: {when}",
        f"Price agreed: {format_money(ticket.price)}",
        "",
        "The work:",
        ticket.scope,
    ]
    link = f"{HUB_URL}/sub/{ticket.public_token}"
    job_link = f"{HUB_URL}/schedule/jobs/{job.id}"
    count = 0
    if kind in ("assigned", "reassigned") and sub is not None:
        body = [f"Hello {sub.contact_name or sub.company},", "", f"{tenant.name} has sent you work.", "", *what]
        body += ["", "View it and mark it done when finished:", link, "", f"Questions? Contact {contact}."]
        _add(
            session,
            tenant.id,
            sub.email,
            "subticket.assigned",
            f"New work from {tenant.name}: {job.title}, {when}",
            "\n".join(body),
        )
        count += 1
    if kind == "reassigned" and previous is not None:
        body = [
            f"Hello {previous.contact_name or previous.company},",
            "",
            f"{tenant.name} has given this work to someone else, so you no longer need to do it:",
            "",
            *what,
            "",
            f"Questions? Contact {contact}.",
        ]
        _add(
            session,
            tenant.id,
            previous.email,
            "subticket.unassigned",
            f"Work withdrawn by {tenant.name}: {job.title}",
            "\n".join(body),
        )
        count += 1
    if kind == "cancelled" and sub is not None:
        body = [f"Hello {sub.contact_name or sub.company},", "", f"{tenant.name} has cancelled this work:", "", *what]
        body += ["", f"Questions? Contact {contact}."]
        _add(
            session,
            tenant.id,
            sub.email,
            "subticket.cancelled",
            f"Work cancelled by {tenant.name}: {job.title}",
            "\n".join(body),
        )
        count += 1
    if count:
        words = {
            "assigned": f"was sent to {_sub_name(sub)} ({sub.email if sub else ''})",
            "reassigned": f"was sent to {_sub_name(sub)} ({sub.email if sub else ''}), and "
            f"{_sub_name(previous)} was told it is no longer theirs",
            "cancelled": f"was cancelled and {_sub_name(sub)} was told",
        }[kind]
        for owner in await _owners(session, tenant.id):
            body = [
                f"Hello {owner.name},",
                "",
                f"The sub-ticket below {words}.",
                "",
                *what,
                "",
                "On the job:",
                job_link,
            ]
            _add(
                session,
                tenant.id,
                owner.email,
                f"subticket.{kind}.owner",
                f"Sub-ticket {kind}: {job.title} → {_sub_name(sub)}",
                "\n".join(body),
                owner.id,
            )
            count += 1
        await session.flush()
        session.sync_session.info[MAIL_KEY] = True  # the pump is woken after this transaction commits
    return count
