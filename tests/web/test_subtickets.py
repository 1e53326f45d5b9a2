"""Sub-tickets: work given to a subcontractor emails both sides at once, over real SMTP (a local aiosmtpd server).

Issue 22 item 5: on assignment the subcontractor gets the work (what, where, when, contact, a private link to view
it and mark it done) and the owner a confirmation; re-assignment and cancellation email too; delivery is durable
(queued in the transaction, retried) and an SMTP failure leaves the email queued and the owner told in the app.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage as Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from tests.conftest import TEST_KEYS

from fieldhub.core.customers.service import create_customer
from fieldhub.core.jobs.service import create_job
from fieldhub.core.subcontractors import service
from fieldhub.core.subcontractors.models import SubTicket, SubTicketStatus
from fieldhub.hub.notify.email import deliver_pending
from fieldhub.hub.notify.models import Notification, OutboundEmail
from fieldhub.settings import Settings


class Inbox:
    """What the local SMTP server received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.arrived = threading.Condition()  # the server runs on a thread (and loop) of its own

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001, ANN201 - aiosmtpd's handler API
        with self.arrived:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]

    async def wait_for(self, count: int, seconds: float = 2.0) -> None:
        def wait() -> None:
            with self.arrived:
                self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=seconds)

        await asyncio.to_thread(wait)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} emails arrived within {seconds} s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def settings(db_url: str, inbox: tuple[Inbox, int]) -> Settings:
    # Test mode with an SMTP server configured: mail goes over SMTP, not to the local mailbox.
    return Settings(
        mode="test",
        database_url=db_url,
        encryption_keys=TEST_KEYS,
        public_url="http://testserver",
        smtp_host="127.0.0.1",
        smtp_port=inbox[1],
        smtp_from="office@riverbend.test",
    )


async def _job(session, biz):
    customer = await create_customer(
        session, biz.tenant.id, {"display_name": "Dana Whitfield", "service_line1": "14 Oak St"}
    )
    start = datetime(2026, 12, 9, 15, tzinfo=UTC)
    job = await create_job(
        session,
        biz.tenant.id,
        {
            "customer_id": customer.id,
            "title": "Kitchen remodel",
            "scheduled_start": start,
            "scheduled_end": start + timedelta(hours=4),
            "address": "14 Oak St, Springfield",
        },
    )
    await session.commit()
    return job


async def _subcontractor(owner, company: str, email: str) -> int:
    r = await owner.submit(
        "/subcontractors/new",
        {"company": company, "contact_name": "Sam", "email": email, "trade": "Electrical", "active": "true"},
    )
    assert r.status_code == 303, r.text
    page = await owner.get("/subcontractors")
    ids = re.findall(r'/subcontractors/(\d+)/edit">' + re.escape(company), page.text)
    assert ids, page.text
    return int(ids[0])


async def test_issue22_item5_assignment_emails_subcontractor_and_owner_within_2s(owner, session, biz, inbox) -> None:
    server, _ = inbox
    job = await _job(session, biz)
    sub_id = await _subcontractor(owner, "Bright Spark Electric", "jobs@brightspark.example.com")

    r = await owner.submit(
        f"/schedule/jobs/{job.id}/sub-tickets",
        {
            "scope": "Wire the new island: 2 circuits",
            "scheduled_on": "2026-12-10",
            "price": "450.00",
            "subcontractor_id": str(sub_id),
        },
    )
    assert r.status_code == 303 and "sub_assigned" in r.headers["location"]
    await server.wait_for(2)  # the pump is woken by the commit: no sweep interval in between

    (work,) = server.to("jobs@brightspark.example.com")
    (confirmation,) = server.to(biz.owner.email)
    text = work.get_content()
    assert work["From"] == "office@riverbend.test"
    assert "Kitchen remodel" in work["Subject"] and "Wire the new island" in text
    assert "14 Oak St, Springfield" in text and "Thursday, December 10, 2026" in text and "$450.00" in text
    link = re.search(r"http://testserver/sub/(\S+)", text)
    assert link, text
    assert (
        "Bright Spark Electric" in confirmation.get_content()
        and f"/schedule/jobs/{job.id}" in confirmation.get_content()
    )
    assert len(server.messages) == 2

    # The private link opens without a login and marks the work done; the business is told in the app.
    async with owner.__class__(transport=owner._transport, base_url="http://testserver") as stranger:
        page = await stranger.get(f"/sub/{link.group(1)}")
        assert page.status_code == 200 and "Wire the new island" in page.text and "Mark done" in page.text
        done = await stranger.post(f"/sub/{link.group(1)}/done")
        assert done.status_code == 303
    ticket = await session.scalar(select(SubTicket).where(SubTicket.job_id == job.id))
    await session.refresh(ticket)
    assert ticket.status == SubTicketStatus.DONE
    notes = (await session.scalars(select(Notification).where(Notification.kind == "subticket.done"))).all()
    assert len(notes) == 1


async def test_issue22_item5_reassign_and_cancel_email_everyone_once(owner, session, biz, inbox) -> None:
    server, _ = inbox
    job = await _job(session, biz)
    first = await _subcontractor(owner, "Bright Spark Electric", "jobs@brightspark.example.com")
    second = await _subcontractor(owner, "Volt Brothers", "dispatch@volt.example.com")
    await owner.submit(
        f"/schedule/jobs/{job.id}/sub-tickets",
        {"scope": "Panel upgrade", "scheduled_on": "2026-12-10", "price": "900", "subcontractor_id": str(first)},
    )
    await server.wait_for(2)
    ticket = await session.scalar(select(SubTicket).where(SubTicket.job_id == job.id))
    old_token = ticket.public_token

    r = await owner.submit(f"/sub-tickets/{ticket.id}/assign", {"subcontractor_id": str(second)})
    assert r.status_code == 303 and "sub_reassigned" in r.headers["location"]
    await server.wait_for(5)
    assert "no longer need" in server.to("jobs@brightspark.example.com")[-1].get_content()
    assert "Panel upgrade" in server.to("dispatch@volt.example.com")[0].get_content()
    assert (await owner.get(f"/sub/{old_token}")).status_code == 404  # the first subcontractor's link is dead

    # Assigning to the same subcontractor again sends nothing more.
    await owner.submit(f"/sub-tickets/{ticket.id}/assign", {"subcontractor_id": str(second)})
    r = await owner.submit(f"/sub-tickets/{ticket.id}/cancel")
    assert r.status_code == 303
    await server.wait_for(7)
    await asyncio.sleep(0.2)
    assert len(server.messages) == 7
    assert "cancelled" in server.to("dispatch@volt.example.com")[-1].get_content()
    page = await owner.get(f"/schedule/jobs/{job.id}")
    assert "Cancelled" in page.text and "Volt Brothers" in page.text


async def _settled(session) -> list[OutboundEmail]:
    """The queued emails once no delivery is in flight (the app's own pump may be sending one right now: a claimed
    row has sent_at set and no transport until its attempt ends)."""
    for _ in range(100):
        fresh = select(OutboundEmail).order_by(OutboundEmail.id).execution_options(populate_existing=True)
        rows = list((await session.scalars(fresh)).all())
        if all(r.sent_at is None or r.transport for r in rows):
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError("a delivery stayed in flight")


async def test_issue22_item5_smtp_failure_keeps_the_email_queued_and_tells_the_owner(
    session, biz, sessionmaker, settings
) -> None:
    port, settings.smtp_port = settings.smtp_port, _free_port()  # the app's mail pump shares these settings
    job = await _job(session, biz)
    sub = await service.create_subcontractor(session, biz.tenant.id, {"company": "Volt", "email": "v@volt.example.com"})
    await service.create_sub_ticket(
        session, biz.tenant.id, job.id, {"scope": "Trench", "scheduled_on": "2026-12-10", "subcontractor_id": sub.id}
    )
    await session.commit()
    assert await deliver_pending(sessionmaker, settings) == 0  # nothing listens on that port
    rows = await _settled(session)
    assert [r.to_address for r in rows] == ["v@volt.example.com", biz.owner.email]
    assert all(r.sent_at is None and r.error.startswith("ConnectionRefusedError") for r in rows)
    notes = (await session.scalars(select(Notification).where(Notification.kind == "email.failed"))).all()
    addresses = ("v@volt.example.com", biz.owner.email)
    assert sorted(n.title for n in notes) == sorted(f"Email to {a} is not delivered yet; retrying" for a in addresses)

    # The server is back: the queued emails go out on the next round, and the owner isn't told twice.
    settings.smtp_port = port
    await deliver_pending(sessionmaker, settings)
    rows = await _settled(session)
    assert all(r.sent_at is not None and r.transport == "smtp" for r in rows)
    assert len((await session.scalars(select(Notification).where(Notification.kind == "email.failed"))).all()) == 2


async def test_issue22_item5_technician_cannot_give_work_and_tenants_are_apart(
    make_client, owner, session, biz, other_biz
) -> None:
    job = await _job(session, biz)
    sub = await service.create_subcontractor(session, biz.tenant.id, {"company": "Volt", "email": "v@volt.example.com"})
    ticket = await service.create_sub_ticket(
        session, biz.tenant.id, job.id, {"scope": "Trench", "scheduled_on": "2026-12-10"}
    )
    await session.commit()
    async with make_client() as tech:
        await tech.login(biz.tech.email)
        assert (
            await tech.submit(f"/sub-tickets/{ticket.id}/assign", {"subcontractor_id": str(sub.id)})
        ).status_code == 403
        assert (
            await tech.submit("/subcontractors/new", {"company": "X", "email": "x@x.example.com"})
        ).status_code == 403
        page = await tech.get(f"/schedule/jobs/{job.id}")
        assert "Trench" in page.text and "Add sub-ticket" not in page.text
    async with make_client() as other:
        await other.login(other_biz.owner.email)
        assert (
            await other.submit(f"/sub-tickets/{ticket.id}/assign", {"subcontractor_id": str(sub.id)})
        ).status_code == 404
        assert (await other.submit(f"/sub-tickets/{ticket.id}/cancel")).status_code == 404
    await session.refresh(ticket)
    assert ticket.status == SubTicketStatus.OPEN and ticket.subcontractor_id is None
    assert (await session.scalars(select(OutboundEmail))).all() == []
