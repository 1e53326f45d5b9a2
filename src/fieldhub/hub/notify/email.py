"""Delivers queued alert emails: over SMTP (smtplib in a thread) in production, to the local mailbox in demo/test.

A pump runs beside the web app: woken after any commit that queued mail, and every minute in case a
wake-up was lost (a crash between commit and send). Each row is claimed by setting sent_at before
sending, so two processes never send one email twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from fieldhub.db import utcnow
from fieldhub.hub.notify import MAIL_KEY, notify
from fieldhub.hub.notify.invoice_mail import expand
from fieldhub.hub.notify.models import OutboundEmail
from fieldhub.log import get_logger
from fieldhub.settings import Settings

log = get_logger(__name__)
MAILBOX_MODES = ("demo", "test")
SWEEP_SECONDS = 60.0
MAX_ATTEMPTS = 5
# Alerts to the business's own users; a failure of one of these is not itself alerted (no loop).
ALERT_PREFIXES = ("connection.", "sync.", "email.")

_wake: asyncio.Event | None = None


def uses_mailbox(settings: Settings) -> bool:
    """Demo and test deliver to the local mailbox unless an SMTP server is configured (real SMTP in the tests)."""
    return settings.mode in MAILBOX_MODES and not settings.smtp_host


def _permanent(error: Exception) -> bool:
    """A refusal that retrying won't cure: the server rejected the address (5xx), i.e. the message bounced."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


async def _tell_owner(session: AsyncSession, row: OutboundEmail, permanent: bool) -> None:
    """A message to someone outside the business (a customer, a subcontractor) that did not go out is shown in
    the app: once when it first fails (it stays queued and is retried), and again if it is given up."""
    if row.kind.startswith(ALERT_PREFIXES) or not (permanent or row.attempts == 1):
        return
    what = "could not be delivered and will not be retried" if permanent else "is not delivered yet; retrying"
    await notify(
        session,
        row.tenant_id,
        "email.failed",
        f"Email to {row.to_address} {what}",
        f"{row.subject}\n\nThe mail server said: {row.error}",
        "/notifications",
    )


def _send_smtp(settings: Settings, to: str, subject: str, body: str, html: str = "") -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if html:
        message.add_alternative(html, subtype="html")  # multipart/alternative: text first, HTML preferred
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        smtp.send_message(message)


async def deliver_pending(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, limit: int = 100) -> int:
    """Deliver what is queued; returns how many went out. Failures stay queued with the error, up to MAX_ATTEMPTS."""
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(OutboundEmail.id)
                .where(OutboundEmail.sent_at.is_(None), OutboundEmail.attempts < MAX_ATTEMPTS)
                .order_by(OutboundEmail.id)
                .limit(limit)
            )
        )
    sent = 0
    for email_id in ids:
        async with sessionmaker() as session:
            # Claim it: only one process gets rowcount 1.
            claimed = await session.execute(
                update(OutboundEmail)
                .where(OutboundEmail.id == email_id, OutboundEmail.sent_at.is_(None))
                .values(sent_at=utcnow(), attempts=OutboundEmail.attempts + 1)
            )
            await session.commit()
            if not claimed.rowcount:  # type: ignore[attr-defined]
                continue
            row = await session.get(OutboundEmail, email_id)
            assert row is not None
            row.body = expand(row.body, settings.base_url)  # links written before the hub's address was known
            row.html_body = expand(row.html_body or "", settings.base_url)
            if uses_mailbox(settings):
                row.transport = "mailbox"
            elif not settings.smtp_host:
                row.sent_at, row.error = None, "No SMTP server is configured (FIELDHUB_SMTP_HOST)."
                await _tell_owner(session, row, permanent=False)
            else:
                try:
                    await asyncio.to_thread(_send_smtp, settings, row.to_address, row.subject, row.body, row.html_body)
                    row.transport = "smtp"
                except (OSError, smtplib.SMTPException) as e:
                    row.sent_at, row.error = None, f"{type(e).__name__}: {e}"
                    permanent = _permanent(e)
                    if permanent:
                        row.attempts = MAX_ATTEMPTS
                    log.warning("notify.email.failed", email_id=email_id, error=row.error, permanent=permanent)
                    await _tell_owner(session, row, permanent)
            await session.commit()
            sent += row.sent_at is not None
    return sent


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(MAIL_KEY, None) and _wake is not None:
        _wake.set()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(MAIL_KEY, None)


async def _pump(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, wake: asyncio.Event) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), SWEEP_SECONDS)
        wake.clear()
        try:
            await deliver_pending(sessionmaker, settings)
        except Exception as e:  # noqa: BLE001 - the pump must outlive a bad moment (database restart)
            log.error("notify.pump.failed", error=str(e))


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Run the mail pump for the app's lifetime (a router lifespan, so main.py needs no change)."""
    global _wake
    state = app.state
    wake = asyncio.Event()
    previous, _wake = _wake, wake
    task = asyncio.create_task(_pump(state.sessionmaker, state.settings, wake))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _wake = previous
