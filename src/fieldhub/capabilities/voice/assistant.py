"""The assistant's four tools, answered from the business's own records while the caller waits.

- `check_availability`: real free slots: working hours and days, each technician's jobs with a travel buffer
  either side, and their blocked time (by hand or busy time from a connected calendar, the same `time_blocks`
  the schedule shows);
- `book_job`: the caller found (by phone, then email) or added, the job put on the schedule; a slot taken
  meanwhile is refused with the next free ones offered. Bookings for one business are taken one at a time
  (the business's row is locked), so two callers can't both get the last slot;
- `invoice_balance`: open invoices and what is owed, only to a caller whose number (the telephone network's caller
  id, not what they say) is the customer's; the Pay Now email on request;
- `take_message`: a notification in the app, and email to whoever asked for it.

Every answer is a small JSON object whose words the assistant can read out; figures come from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Tenant, User
from fieldhub.core.customers import service as customers
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.jobs import service as jobs
from fieldhub.core.jobs.models import Job, JobStatus, TimeBlock, job_assignments
from fieldhub.core.money import ZERO, format_money
from fieldhub.hub.notify import notify

MAX_DAYS = 14  # a range asked for is cut to this many days
OPEN_INVOICES = (InvoiceStatus.OPEN, InvoiceStatus.SENT, InvoiceStatus.PARTIALLY_PAID)


@dataclass(frozen=True)
class Hours:
    """When the business takes jobs (conn.settings["assistant"], set on the Voice AI page)."""

    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    opens: time = time(8, 0)
    closes: time = time(17, 0)
    job_minutes: int = 120
    buffer_minutes: int = 30  # travel between jobs, kept free either side of each one
    max_slots: int = 6

    @classmethod
    def from_settings(cls, values: dict[str, Any] | None) -> Hours:
        v = values or {}
        try:
            return cls(
                days=tuple(int(d) for d in v.get("days", cls.days)),
                opens=time.fromisoformat(v.get("opens", "08:00")),
                closes=time.fromisoformat(v.get("closes", "17:00")),
                job_minutes=int(v.get("job_minutes", cls.job_minutes)),
                buffer_minutes=int(v.get("buffer_minutes", cls.buffer_minutes)),
            )
        except (TypeError, ValueError):
            return cls()

    def as_settings(self) -> dict[str, Any]:
        return {
            "days": list(self.days),
            "opens": self.opens.strftime("%H:%M"),
            "closes": self.closes.strftime("%H:%M"),
            "job_minutes": self.job_minutes,
            "buffer_minutes": self.buffer_minutes,
        }


def _label(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%A %B %-d at %-I:%M %p").replace(":00 ", " ")


def _day(value: Any, default: date) -> date:
    try:
        return date.fromisoformat(str(value)[:10]) if value else default
    except ValueError:
        return default


async def _busy(
    session: AsyncSession, tenant_id: int, start: datetime, end: datetime, buffer: timedelta
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Each technician's busy intervals overlapping [start, end]: jobs widened by the travel buffer, and blocks."""
    busy: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = await session.execute(
        select(job_assignments.c.user_id, Job.scheduled_start, Job.scheduled_end)
        .join(Job, Job.id == job_assignments.c.job_id)
        .where(
            Job.tenant_id == tenant_id,
            Job.status != JobStatus.CANCELLED,
            Job.scheduled_start < end + buffer,
            Job.scheduled_end > start - buffer,
        )
    )
    for user_id, s, e in rows:
        busy.setdefault(user_id, []).append((s - buffer, e + buffer))
    blocks = await session.execute(
        select(TimeBlock.user_id, TimeBlock.starts_at, TimeBlock.ends_at).where(
            TimeBlock.tenant_id == tenant_id, TimeBlock.starts_at < end, TimeBlock.ends_at > start
        )
    )
    for user_id, s, e in blocks:
        busy.setdefault(user_id, []).append((s, e))
    return busy


def _free(intervals: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return all(e <= start or s >= end for s, e in intervals)


async def free_slots(
    session: AsyncSession,
    tenant: Tenant,
    hours: Hours,
    first: date,
    last: date,
    part_of_day: str = "any",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Up to hours.max_slots free slots from `first` to `last` (local days), earliest first, each with a technician
    free for the whole job and its travel buffer."""
    zone = ZoneInfo(tenant.timezone)
    now = now or datetime.now(UTC)
    last = min(last, first + timedelta(days=MAX_DAYS - 1))
    techs: list[User] = await jobs.list_technicians(session, tenant.id)
    if not techs or last < first:
        return []
    length, buffer = timedelta(minutes=hours.job_minutes), timedelta(minutes=hours.buffer_minutes)
    range_start = datetime.combine(first, hours.opens, zone).astimezone(UTC)
    range_end = datetime.combine(last, hours.closes, zone).astimezone(UTC)
    busy = await _busy(session, tenant.id, range_start, range_end, buffer)
    slots: list[dict[str, Any]] = []
    day = first
    while day <= last and len(slots) < hours.max_slots:
        if day.weekday() in hours.days:
            moment = datetime.combine(day, hours.opens, zone)
            closing = datetime.combine(day, hours.closes, zone)
            while moment + length <= closing and len(slots) < hours.max_slots:
                morning = moment.hour < 12
                wanted = part_of_day not in ("morning", "afternoon") or (part_of_day == "morning") == morning
                start = moment.astimezone(UTC)
                if wanted and start > now:
                    for tech in techs:
                        if _free(busy.get(tech.id, []), start, start + length):
                            slots.append(
                                {
                                    "start": moment.isoformat(),
                                    "end": (moment + length).isoformat(),
                                    "label": _label(start, zone),
                                    "technician_id": tech.id,
                                    "technician": tech.name.split(" ")[0],
                                }
                            )
                            break
                moment += timedelta(hours=1)
        day += timedelta(days=1)
    return slots


async def check_availability(
    session: AsyncSession, tenant: Tenant, hours: Hours, args: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(tenant.timezone)).date()
    first = _day(args.get("date_from"), today)
    last = _day(args.get("date_to"), first + timedelta(days=6))
    part = str(args.get("part_of_day") or "any").lower()
    slots = await free_slots(session, tenant, hours, max(first, today), last, part, now)
    if not slots:
        return {"slots": [], "say": "There are no free appointments in that time. Offer to take a message."}
    return {
        "slots": slots,
        "time_zone": tenant.timezone,
        "say": "Free times: " + "; ".join(s["label"] for s in slots) + ".",
    }


async def _lock_bookings(session: AsyncSession, tenant_id: int) -> None:
    """One booking at a time per business: a write on its row (a row lock on PostgreSQL, the write lock on SQLite)
    held until this transaction ends, so the slot checked free is still free when the job is written."""
    await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(updated_at=Tenant.updated_at))


async def book_job(
    session: AsyncSession,
    tenant: Tenant,
    hours: Hours,
    args: dict[str, Any],
    from_number: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    zone = ZoneInfo(tenant.timezone)
    try:
        start = datetime.fromisoformat(str(args.get("slot") or ""))
    except ValueError:
        return {"booked": False, "say": "Ask the caller which of the free times they want."}
    start = (start if start.tzinfo else start.replace(tzinfo=zone)).astimezone(UTC)
    end = start + timedelta(minutes=hours.job_minutes)
    name = str(args.get("name") or "").strip()[:200] or "Phone caller"
    phone = str(args.get("phone") or from_number or "").strip()[:40]
    await _lock_bookings(session, tenant.id)
    busy = await _busy(session, tenant.id, start, end, timedelta(minutes=hours.buffer_minutes))
    local = start.astimezone(zone)
    in_hours = (
        local.weekday() in hours.days
        and local.time() >= hours.opens
        and (local + timedelta(minutes=hours.job_minutes)).time() <= hours.closes
    )
    tech = next(
        (t for t in await jobs.list_technicians(session, tenant.id) if _free(busy.get(t.id, []), start, end)), None
    )
    if tech is None or not in_hours or start <= (now or datetime.now(UTC)):
        offers = await free_slots(session, tenant, hours, local.date(), local.date() + timedelta(days=7), now=now)
        return {
            "booked": False,
            "reason": "taken" if in_hours else "closed",
            "next_slots": offers[:3],
            "say": "That time is no longer free. "
            + ("Next free: " + "; ".join(s["label"] for s in offers[:3]) + "." if offers else "Take a message."),
        }
    customer = await customers.find_by_phone(session, tenant.id, phone)
    email = str(args.get("email") or "").strip()
    if customer is None and email:
        customer = await session.scalar(
            select(Customer).where(Customer.tenant_id == tenant.id, Customer.email == email.lower())
        )
    address = str(args.get("address") or "").strip()[:200]
    if customer is None:
        data: dict[str, Any] = {"display_name": name, "phone": phone, "service_line1": address}
        customer = await customers.create_customer(session, tenant.id, data)
    service = str(args.get("service") or "Service call").strip()[:200] or "Service call"
    notes = str(args.get("notes") or "").strip()[:3000]
    job = await jobs.create_job(
        session,
        tenant.id,
        {
            "customer_id": customer.id,
            "title": service,
            "description": (notes + "\n\n" if notes else "") + "Booked by the phone assistant.",
            "address": address,
            "scheduled_start": start,
            "scheduled_end": end,
            "technician_ids": [tech.id],
        },
    )
    return {
        "booked": True,
        "job_id": job.id,
        "customer_id": customer.id,
        "start": local.isoformat(),
        "technician": tech.name.split(" ")[0],
        "say": f"Booked: {service} on {_label(start, zone)} with {tech.name.split(' ')[0]}.",
    }


def _mask(email: str) -> str:
    user, _, domain = email.partition("@")
    return f"{user[:1]}…@{domain}" if domain else ""


async def invoice_balance(
    session: AsyncSession, tenant: Tenant, args: dict[str, Any], from_number: str
) -> dict[str, Any]:
    """Figures only for the customer whose phone number is the one calling; nothing otherwise, not even whether
    an invoice number exists."""
    refusal = {
        "found": False,
        "say": "I can only discuss an account with a call from the phone number on that account. "
        "Offer to take a message so the office can call them back.",
    }
    customer = await customers.find_by_phone(session, tenant.id, from_number)
    if customer is None:
        return refusal
    stmt = select(Invoice).where(
        Invoice.tenant_id == tenant.id,
        Invoice.customer_id == customer.id,
        Invoice.status.in_(OPEN_INVOICES),
        Invoice.balance > ZERO,
    )
    number = str(args.get("invoice_number") or "").strip()
    if number:
        stmt = stmt.where(Invoice.number == number)
    open_invoices = list(await session.scalars(stmt.order_by(Invoice.due_date, Invoice.id)))
    if number and not open_invoices:
        return {
            "found": True,
            "customer_id": customer.id,
            "invoices": [],
            "say": f"Invoice {number} has nothing owing.",
        }
    total = sum((i.balance for i in open_invoices), Decimal("0"))
    result: dict[str, Any] = {
        "found": True,
        "customer_id": customer.id,
        "invoices": [
            {"number": i.number, "balance": str(i.balance), "due_date": i.due_date.isoformat() if i.due_date else None}
            for i in open_invoices
        ],
        "total_due": str(total),
        "say": f"{customer.display_name} owes {format_money(total)} on {len(open_invoices)} open invoice(s)."
        if open_invoices
        else f"{customer.display_name} has nothing owing. Thank you!",
    }
    if args.get("send_pay_link") and open_invoices:
        from fieldhub.hub.notify.invoice_mail import queue_invoice_email  # the invoice email, with Pay Now

        if customer.email and await queue_invoice_email(session, tenant.id, open_invoices[0].id):
            result["pay_link_sent_to"] = _mask(customer.email)
            result["say"] += f" A Pay Now link is on its way to {_mask(customer.email)}."
        else:
            result["say"] += " There is no email address on the account to send a Pay Now link to."
    return result


async def take_message(session: AsyncSession, tenant: Tenant, args: dict[str, Any], from_number: str) -> dict[str, Any]:
    name = str(args.get("name") or "A caller").strip()[:120]
    phone = str(args.get("phone") or from_number).strip()[:40]
    urgency = "urgent" if str(args.get("urgency") or "").lower() in ("urgent", "high", "emergency") else "normal"
    reason = str(args.get("reason") or "").strip()[:2000]
    title = f"{'URGENT: ' if urgency == 'urgent' else ''}Phone message from {name}"
    note = await notify(session, tenant.id, "voice.message", title, f"Call back: {phone}\n\n{reason}", "/voice")
    return {"taken": True, "notification_id": note.id, "say": "Message taken; the office will call back."}
