"""The e-signature flows, written once for every signing service: send, sign here, follow, void, keep the result.

Send: the ledger row (SignatureEnvelope) is written and committed before the service is called, under a send
key that is unique per estimate and attempt, so a second send of the same estimate at the same moment fails its
insert and gets the first one's envelope instead of making another. A reply lost on the way back leaves the row
`sending`; the periodic task asks the service for the key (find) and settles it.

Follow: webhooks (providers/<key>/webhooks.py) and the poll behind them (tasks.py) both end in `apply_update`,
which only moves an envelope forward. Signed: the estimate is approved, the signed PDF and the certificate are
kept with it, the owner is told. Declined: the estimate is declined and the reason kept. An estimate edited
after it was sent has its open envelope voided at the service and asks to be sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from fieldhub.capabilities.esign import Anchor, Request, Update
from fieldhub.capabilities.esign.models import OPEN, RANK, EnvelopeStatus, SignatureEnvelope
from fieldhub.core.accounts.models import Role, Tenant, User
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.core.estimates.pdf import DATE_ANCHOR, SIGNATURE_ANCHOR, EstimateDocument, render_with_anchors
from fieldhub.core.events import DomainEvent
from fieldhub.core.jobs.models import Job, JobStatus, job_assignments
from fieldhub.core.validation import OptionalId, parse
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.errors import ProviderError, RetryLater
from fieldhub.hub.notify import notify
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.clients import client_for
from fieldhub.log import get_logger

log = get_logger(__name__)
KIND = "esign"
CHANGED = "The estimate was changed after it was sent."
SETTLE_AFTER = timedelta(seconds=60)  # a `sending` row this old lost its reply: ask the service by its key


class EsignError(Exception):
    """Something the person sending should read: no service connected, no customer email, not allowed."""


def implementation(provider: str) -> ModuleType:
    module = registry.import_module(provider, KIND)
    if module is None:
        raise EsignError(f"{registry.get(provider).name} can't send for signature.")
    return module


def services() -> list[str]:
    """The providers of this kind whose folder implements the protocol (providers/<key>/esign.py)."""
    return [s.key for s in registry.providers_of(KIND) if registry.import_module(s.key, KIND) is not None]


async def connected(session: AsyncSession, tenant_id: int) -> list[Connection]:
    keys = services()
    if not keys:
        return []
    rows = await session.scalars(
        select(Connection)
        .where(
            Connection.tenant_id == tenant_id,
            Connection.provider.in_(keys),
            Connection.status == ConnectionStatus.CONNECTED,
        )
        .order_by(Connection.provider, Connection.id)
    )
    return list(rows)


async def may_send(session: AsyncSession, user: User, estimate: Estimate) -> bool:
    """Owner and Admin; a technician for an estimate of a customer whose open job they are assigned to."""
    role = Role(user.role)
    if role.manages_integrations:
        return True
    if role is not Role.TECHNICIAN:
        return False
    assigned = exists().where(
        job_assignments.c.job_id == Job.id,
        job_assignments.c.user_id == user.id,
        Job.tenant_id == estimate.tenant_id,
        Job.customer_id == estimate.customer_id,
        Job.status != JobStatus.CANCELLED,
    )
    return bool(await session.scalar(select(assigned)))


async def envelopes_of(session: AsyncSession, tenant_id: int, estimate_id: int) -> list[SignatureEnvelope]:
    rows = await session.scalars(
        select(SignatureEnvelope)
        .where(SignatureEnvelope.tenant_id == tenant_id, SignatureEnvelope.estimate_id == estimate_id)
        .order_by(SignatureEnvelope.id.desc())
    )
    return list(rows)


async def get_envelope(
    session: AsyncSession, tenant_id: int, envelope_id: int, *, files: bool = False
) -> SignatureEnvelope:
    query = select(SignatureEnvelope).where(
        SignatureEnvelope.id == envelope_id, SignatureEnvelope.tenant_id == tenant_id
    )
    if files:
        query = query.options(undefer(SignatureEnvelope.signed_pdf), undefer(SignatureEnvelope.certificate_pdf))
    row = await session.scalar(query)
    if row is None:
        raise NotFound("envelope", envelope_id)
    return row


@dataclass(frozen=True)
class SendIn:
    connection_id: int | None
    message: str
    embedded: bool


class SendForm(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    connection_id: OptionalId = None
    message: str = Field("", max_length=2000)


def _send_in(data: dict[str, Any]) -> SendIn:
    form = parse(SendForm, data)
    return SendIn(form.connection_id, form.message, str(data.get("mode", "")) == "embedded")


async def _request(session: AsyncSession, env: OAuthEnv, estimate: Estimate, row: SignatureEnvelope) -> Request:
    tenant = await session.get_one(Tenant, estimate.tenant_id)
    label = "Tax"
    if estimate.tax_rate_id is not None:
        from fieldhub.core.items.models import TaxRate

        rate = await session.get(TaxRate, estimate.tax_rate_id)
        if rate is not None:
            label = f"{rate.name} ({rate.rate.normalize():f} %)"
    pdf, placed = render_with_anchors(EstimateDocument(estimate=estimate, tenant=tenant, tax_label=label))
    sig, day = placed[SIGNATURE_ANCHOR], placed[DATE_ANCHOR]
    return Request(
        send_key=row.send_key,
        title=f"Estimate {estimate.number}",
        subject=f"{tenant.name}: estimate {estimate.number} to sign",
        message=row.message or f"Please review and sign estimate {estimate.number} from {tenant.name}.",
        pdf=pdf,
        file_name=f"Estimate {estimate.number}.pdf",
        signer_name=row.signer_name,
        signer_email=row.signer_email,
        embedded=row.embedded,
        signer_key=f"customer-{estimate.customer_id}",
        signature=Anchor(SIGNATURE_ANCHOR, sig.page, sig.x, sig.y),
        date=Anchor(DATE_ANCHOR, day.page, day.x, day.y),
        webhook_url=f"{env.settings.base_url}/webhooks/{row.provider}",
        return_url=f"{env.settings.base_url}/esign/envelopes/{row.id}/back",
        app_id=env.settings.provider(row.provider).client_id,
    )


async def _claim(
    session: AsyncSession, user: User, estimate: Estimate, conn: Connection, form: SendIn
) -> tuple[SignatureEnvelope, bool]:
    """The ledger row for this send, committed: (row, True) when this call made it, (open row, False) when a send
    of this estimate is already open (made by a concurrent request or an earlier one)."""
    open_row = await session.scalar(
        select(SignatureEnvelope).where(
            SignatureEnvelope.tenant_id == estimate.tenant_id,
            SignatureEnvelope.estimate_id == estimate.id,
            SignatureEnvelope.status.in_(OPEN),
            SignatureEnvelope.void_requested.is_(False),
        )
    )
    if open_row is not None:
        return open_row, False
    # Only closed envelopes count: two sends racing both see none of each other's, so both make the same key and
    # the second insert fails. (Not the estimate's version: the first send's own "sent" transition bumps it.)
    closed = await session.scalar(
        select(func.count())
        .select_from(SignatureEnvelope)
        .where(SignatureEnvelope.estimate_id == estimate.id, SignatureEnvelope.status.not_in(OPEN))
    )
    customer = estimate.customer
    row = SignatureEnvelope(
        tenant_id=estimate.tenant_id,
        estimate_id=estimate.id,
        estimate_version=estimate.version,
        connection_id=conn.id,
        provider=conn.provider,
        send_key=f"est-{estimate.id}-{closed or 0}",
        status=EnvelopeStatus.SENDING,
        signer_name=customer.display_name,
        signer_email=customer.email,
        message=form.message,
        embedded=form.embedded,
        sent_by_id=user.id,
    )
    key = row.send_key  # read now: the rollback below expires what the session holds
    try:
        async with session.begin_nested():
            session.add(row)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if row in session:
            session.expunge(row)  # the losing insert must not be flushed again by the next query
        with session.no_autoflush:
            winner = await session.scalar(select(SignatureEnvelope).where(SignatureEnvelope.send_key == key))
        if winner is None:
            raise
        log.info("esign.send.concurrent", send_key=key)
        return winner, False
    return row, True


async def send_for_signature(
    session: AsyncSession, env: OAuthEnv, user: User, estimate_id: int, data: dict[str, Any]
) -> SignatureEnvelope:
    """Send the estimate to its customer for signature (idempotent: an open send is returned, not repeated)."""
    estimate = await estimates.get_estimate(session, user.tenant_id, estimate_id)
    if not await may_send(session, user, estimate):
        raise EsignError("Only the owner, an admin or the estimate's technician can send it for signature.")
    if estimate.status not in (EstimateStatus.DRAFT, EstimateStatus.SENT):
        raise EsignError(f"An {estimate.status} estimate can't be sent for signature.")
    if not estimate.customer.email:
        raise EsignError("Add the customer's email address first: the signing service needs it.")
    form = _send_in(data)
    conns = await connected(session, user.tenant_id)
    if not conns:
        raise EsignError("Connect DocuSign or Dropbox Sign first (Settings → Integrations → E-Signatures).")
    conn = next((c for c in conns if c.id == form.connection_id), None) if form.connection_id else conns[0]
    if conn is None:
        raise ValidationFailed.one("connection_id", "Choose a connected signing service.")
    row, mine = await _claim(session, user, estimate, conn, form)
    if not mine:
        return row
    await _deliver(session, env, estimate, row, conn)
    return row


async def _deliver(
    session: AsyncSession, env: OAuthEnv, estimate: Estimate, row: SignatureEnvelope, conn: Connection
) -> None:
    module = implementation(conn.provider)
    request = await _request(session, env, estimate, row)
    try:
        async with client_for(env, conn) as client:
            sent = await module.send(client, conn, request)
    except RetryLater as exc:
        # The service may have made it: the periodic task asks by the send key before anything is sent again.
        row.error = exc.reason
        log.warning("esign.send.unsure", envelope=row.id, reason=exc.reason)
        await session.commit()
        return
    except ProviderError as exc:
        row.status = EnvelopeStatus.FAILED
        row.error = exc.reason
        log.warning("esign.send.refused", envelope=row.id, reason=exc.reason)
        await session.commit()
        raise EsignError(f"{registry.get(conn.provider).name} refused it: {exc.reason}") from None
    await _mark_sent(session, estimate, row, sent.remote_id)
    await session.commit()


async def _mark_sent(session: AsyncSession, estimate: Estimate, row: SignatureEnvelope, remote_id: str) -> None:
    row.remote_id = remote_id
    row.status = EnvelopeStatus.SENT
    row.sent_at = row.checked_at = utcnow()
    row.error = ""
    if estimate.status is EstimateStatus.DRAFT or estimate.status == EstimateStatus.DRAFT:
        await estimates.send_estimate(session, estimate.tenant_id, estimate.id)
    row.estimate_version = estimate.version
    log.info("esign.sent", envelope=row.id, provider=row.provider)


async def signing_url(session: AsyncSession, env: OAuthEnv, user: User, envelope_id: int, return_url: str) -> str:
    """Where the customer signs on this device now (the service's embedded view)."""
    row = await get_envelope(session, user.tenant_id, envelope_id)
    estimate = await estimates.get_estimate(session, user.tenant_id, row.estimate_id)
    if not await may_send(session, user, estimate):
        raise EsignError("Only the owner, an admin or the estimate's technician can open signing here.")
    if not row.embedded or row.status not in (EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED) or not row.remote_id:
        raise EsignError("This envelope can't be signed on this device.")
    conn = await session.get_one(Connection, row.connection_id)
    request = await _request(session, env, estimate, row)
    try:
        async with client_for(env, conn) as client:
            return await implementation(row.provider).signing_url(client, conn, row.remote_id, request, return_url)
    except ProviderError as exc:
        raise EsignError(f"{registry.get(row.provider).name} could not open signing: {exc.reason}") from None


async def void(
    session: AsyncSession, env: OAuthEnv, user: User, envelope_id: int, reason: str = ""
) -> SignatureEnvelope:
    row = await get_envelope(session, user.tenant_id, envelope_id)
    estimate = await estimates.get_estimate(session, user.tenant_id, row.estimate_id)
    if not await may_send(session, user, estimate):
        raise EsignError("Only the owner, an admin or the estimate's technician can void it.")
    if row.status not in (EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED) or not row.remote_id:
        raise EsignError("Only an envelope waiting for its signature can be voided.")
    await _void_at_service(session, env, row, reason.strip()[:200] or f"Voided by {user.name} in fieldhub.")
    return row


async def _void_at_service(session: AsyncSession, env: OAuthEnv, row: SignatureEnvelope, reason: str) -> None:
    conn = await session.get_one(Connection, row.connection_id)
    assert row.remote_id is not None
    try:
        async with client_for(env, conn) as client:
            await implementation(row.provider).void(client, conn, row.remote_id, reason)
    except ProviderError as exc:
        # Signed or declined meanwhile: the service's own status says which.
        async with client_for(env, conn) as client:
            update_ = await implementation(row.provider).status(client, conn, row.remote_id)
        if update_.status in OPEN:
            raise EsignError(f"{registry.get(row.provider).name} could not void it: {exc.reason}") from None
        await apply_update(session, env, conn, update_)
        return
    row.status = EnvelopeStatus.VOIDED
    row.void_reason = reason
    row.voided_at = row.checked_at = utcnow()
    row.void_requested = False


# ---------------------------------------------------------------- following an envelope


async def apply_update(session: AsyncSession, env: OAuthEnv, conn: Connection, upd: Update) -> bool:
    """What the service says of an envelope, applied in the caller's transaction; True if anything changed.

    Only forward: a late or replayed event about an earlier status changes nothing. Signed fetches the signed
    PDF and the certificate from the service before approving the estimate.
    """
    row = await session.scalar(
        select(SignatureEnvelope).where(
            SignatureEnvelope.provider == conn.provider,
            SignatureEnvelope.remote_id == upd.remote_id,
            SignatureEnvelope.tenant_id == conn.tenant_id,
        )
    )
    if row is None:
        return False
    now = utcnow()
    row.checked_at = now
    current = EnvelopeStatus(row.status)
    new = upd.status
    if RANK[new] < RANK[current] or new == current or (RANK[current] == 3 and RANK[new] == 3):
        if new == current and new is EnvelopeStatus.DELIVERED and row.delivered_at is None:
            row.delivered_at = upd.delivered_at or now
        return False
    row.status = new
    row.delivered_at = row.delivered_at or upd.delivered_at or (now if new is EnvelopeStatus.DELIVERED else None)
    estimate = await session.get_one(Estimate, row.estimate_id)
    if new is EnvelopeStatus.SIGNED:
        row.signed_at = upd.signed_at or upd.at or now
        # No shared rate limiter here: it writes its own rows, and on SQLite this transaction (the webhook
        # inbox's, holding its row) has the one write lock. A failure leaves the files to `fetch_documents`.
        try:
            async with client_for(env, conn, limiter=None) as client:
                row.signed_pdf, row.certificate_pdf = await implementation(row.provider).documents(
                    client, conn, upd.remote_id
                )
        except ProviderError as exc:
            log.warning("esign.documents.later", envelope=row.id, reason=exc.reason)
        if estimate.status == EstimateStatus.SENT and not row.void_requested:
            await estimates.approve_estimate(session, row.tenant_id, estimate.id)
        await notify(
            session,
            row.tenant_id,
            "esign.signed",
            f"Estimate {estimate.number} was signed",
            f"{row.signer_name} signed it with {registry.get(row.provider).name}; the estimate is approved and the "
            "signed PDF is kept with it.",
            link=f"/estimates/{estimate.id}",
        )
    elif new is EnvelopeStatus.DECLINED:
        row.declined_at = upd.declined_at or upd.at or now
        row.decline_reason = upd.decline_reason[:2000]
        if estimate.status == EstimateStatus.SENT and not row.void_requested:
            await estimates.decline_estimate(session, row.tenant_id, estimate.id)
        await notify(
            session,
            row.tenant_id,
            "esign.declined",
            f"Estimate {estimate.number} was declined",
            f"{row.signer_name} declined to sign" + (f": {row.decline_reason}" if row.decline_reason else "."),
            link=f"/estimates/{estimate.id}",
        )
    elif new in (EnvelopeStatus.VOIDED, EnvelopeStatus.EXPIRED):
        row.voided_at = upd.voided_at or upd.at or now
        row.void_reason = row.void_reason or upd.void_reason
        row.void_requested = False
    log.info("esign.status", envelope=row.id, provider=row.provider, status=str(new))
    return True


async def fetch_documents(session: AsyncSession, env: OAuthEnv, row: SignatureEnvelope) -> bool:
    """The signed PDF and certificate of a signed envelope whose files did not come with its status."""
    if row.status != EnvelopeStatus.SIGNED or not row.remote_id:
        return False
    conn = await session.get_one(Connection, row.connection_id)
    async with client_for(env, conn) as client:
        row.signed_pdf, row.certificate_pdf = await implementation(row.provider).documents(client, conn, row.remote_id)
    return True


async def refresh(session: AsyncSession, env: OAuthEnv, row: SignatureEnvelope) -> bool:
    """Ask the service how the envelope stands now (the poll, and the return from signing here)."""
    if not row.remote_id:
        return False
    conn = await session.get_one(Connection, row.connection_id)
    async with client_for(env, conn) as client:
        upd = await implementation(row.provider).status(client, conn, row.remote_id)
    return await apply_update(session, env, conn, upd)


async def settle(session: AsyncSession, env: OAuthEnv, row: SignatureEnvelope) -> None:
    """A `sending` row whose reply was lost: the service's lookup by send key says whether it went out."""
    conn = await session.get_one(Connection, row.connection_id)
    async with client_for(env, conn) as client:
        found = await implementation(row.provider).find(client, conn, row.send_key)
    estimate = await session.get_one(Estimate, row.estimate_id)
    if found is not None:
        await _mark_sent(session, estimate, row, found.remote_id)
    else:
        row.status = EnvelopeStatus.FAILED
        row.error = row.error or "The signing service never received it."


async def on_domain_event(session: AsyncSession, event: DomainEvent) -> None:
    """An estimate edited after it was sent: its open envelope is to be voided (tasks.py does it at the service)."""
    if event.entity != "estimate" or event.kind != "updated":
        return
    await session.execute(
        update(SignatureEnvelope)
        .where(
            SignatureEnvelope.tenant_id == event.tenant_id,
            SignatureEnvelope.estimate_id == event.record_id,
            SignatureEnvelope.status.in_(OPEN),
        )
        .values(void_requested=True)
        .execution_options(synchronize_session=False)
    )


async def due(session: AsyncSession, poll_after: timedelta) -> list[int]:
    """Envelopes the periodic task should look at: voids to make, lost replies to settle, quiet ones to poll."""
    now = utcnow()
    rows = await session.scalars(
        select(SignatureEnvelope.id)
        .where(
            (
                SignatureEnvelope.status.in_(OPEN)
                & SignatureEnvelope.void_requested.is_(True)
                & SignatureEnvelope.remote_id.is_not(None)
            )
            | (
                (SignatureEnvelope.status == EnvelopeStatus.SENDING)
                & (SignatureEnvelope.created_at <= now - SETTLE_AFTER)
            )
            | (
                SignatureEnvelope.status.in_((EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED))
                & (SignatureEnvelope.checked_at <= now - poll_after)
            )
            | ((SignatureEnvelope.status == EnvelopeStatus.SIGNED) & SignatureEnvelope.signed_pdf.is_(None)),
        )
        .order_by(SignatureEnvelope.checked_at)
        .limit(50)
    )
    return list(rows)


async def work_on(session: AsyncSession, env: OAuthEnv, envelope_id: int) -> None:
    row = await session.get_one(SignatureEnvelope, envelope_id, options=[undefer(SignatureEnvelope.signed_pdf)])
    if row.status == EnvelopeStatus.SIGNED:
        if row.signed_pdf is None:
            await fetch_documents(session, env, row)
    elif row.void_requested and row.remote_id and row.status in OPEN:
        try:
            await _void_at_service(session, env, row, CHANGED)
        except EsignError as exc:
            row.error = str(exc)
    elif row.status == EnvelopeStatus.SENDING:
        await settle(session, env, row)
    else:
        await refresh(session, env, row)


def timeline(row: SignatureEnvelope) -> list[tuple[str, datetime, str]]:
    """(what, when, detail) for the estimate page, oldest first."""
    steps = [
        ("Sent", row.sent_at, f"to {row.signer_name} <{row.signer_email}>"),
        ("Viewed", row.delivered_at, ""),
        ("Signed", row.signed_at, ""),
        ("Declined", row.declined_at, row.decline_reason),
        ("Expired" if row.status == EnvelopeStatus.EXPIRED else "Voided", row.voided_at, row.void_reason),
    ]
    return [(what, when, detail) for what, when, detail in steps if when is not None]
