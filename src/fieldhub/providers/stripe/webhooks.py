"""Stripe webhooks: `Stripe-Signature` checked exactly as Stripe's SDK does, and each event turned into core records.

Every handler is idempotent and order-tolerant. Local records are found through remote links
(payment intent → payment, refund → refund) and deposits are unique per payout, so a duplicate
delivery finds its work done, and a late event (a `completed` after the `async_payment_succeeded` it
preceded) finds the payment already further along and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.money import format_money
from fieldhub.core.payments import deposits
from fieldhub.core.payments.models import DepositLineKind, Payment, PaymentMethod, PaymentStatus
from fieldhub.core.validation import id_or_none
from fieldhub.db import utcnow
from fieldhub.hub.connections import service as connections
from fieldhub.hub.connections.models import ConnectionStatus
from fieldhub.hub.notify import notify
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.webhooks.inbox import InboundEvent, WebhookContext
from fieldhub.log import get_logger
from fieldhub.providers.stripe import actions

log = get_logger(__name__)
KEY = "stripe"
TOLERANCE = 300  # seconds: Stripe's SDK DEFAULT_TOLERANCE
SCHEME = "v1"
# What Stripe's events bring in (fieldhub check): payments from checkouts, refunds, payouts as bank deposits.
IMPORTS = ("payment", "refund", "payout")


# ---------------------------------------------------------------- signature and parsing


def verify(
    headers: dict[str, str], body: bytes, secret: str, *, tolerance: int = TOLERANCE, now: float | None = None
) -> bool:
    """stripe-python's WebhookSignature.verify_header: any v1 = hex HMAC-SHA256(secret, "{t}.{body}"), t not stale.

    Several v1 values come while a rolled secret is still active; v0 (test mode's fake) is ignored. Like
    the SDK, a timestamp in the future is not refused: only a valid signature can carry one.
    """
    header = headers.get("stripe-signature", "")
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value.strip() for name, value in pairs if name.strip() == "t"]
    signatures = [value.strip() for name, value in pairs if name.strip() == SCHEME]
    if not stamps or not signatures:
        return False
    try:
        timestamp = int(stamps[0])
    except ValueError:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    matched = False
    for signature in signatures:  # compare every one, so timing says nothing about which matched
        matched |= hmac.compare_digest(expected.encode(), signature.encode())
    if not matched:
        return False
    return timestamp >= (time.time() if now is None else now) - tolerance


def parse(payload: Any) -> InboundEvent:
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise ValueError("not a Stripe event")
    event_id, kind = payload.get("id"), payload.get("type")
    data = payload.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str) or not kind:
        raise ValueError("event without id or type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise ValueError("event without data.object")
    account = payload.get("account")
    return InboundEvent(id=event_id, type=kind, account=account if isinstance(account, str) else None, payload=payload)


# ---------------------------------------------------------------- dispatch


async def handle(ctx: WebhookContext) -> bool:
    handler = HANDLERS.get(ctx.event.type)
    if handler is None or ctx.connection is None:
        return False  # an event we don't act on, or an account no business here has connected
    return await handler(ctx, ctx.event.payload["data"]["object"])


def _options(ctx: WebhookContext) -> dict[str, Any]:
    assert ctx.connection is not None
    return {"stripe_account": ctx.connection.account_id}


async def _invoice_named(ctx: WebhookContext, obj: dict[str, Any]) -> Invoice | None:
    """The invoice a checkout names (metadata, else client_reference_id), only within this connection's business."""
    raw = (obj.get("metadata") or {}).get("invoice_id") or obj.get("client_reference_id") or ""
    invoice_id = id_or_none(str(raw))
    if invoice_id is None:
        return None
    return await ctx.session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == ctx.tenant_id))


async def _payment_for_intent(ctx: WebhookContext, intent_id: str | None) -> Payment | None:
    if not intent_id:
        return None
    link = await ctx.link("payment_intent", intent_id)
    if link is None:
        return None
    return await ctx.session.scalar(
        select(Payment).where(Payment.id == link.local_id, Payment.tenant_id == ctx.tenant_id)
    )


def _day(timestamp: Any) -> Any:
    return datetime.fromtimestamp(int(timestamp), UTC).date() if timestamp else utcnow().date()


async def _tell(ctx: WebhookContext, kind: str, title: str, body: str, link: str = "") -> None:
    assert ctx.tenant_id is not None
    await notify(ctx.session, ctx.tenant_id, kind, title, body, link=link)


async def _tell_once(ctx: WebhookContext, kind: str, about: str, title: str, body: str, link: str = "") -> None:
    """Notify unless this kind of notice about `about` (a Stripe id named in the body) was already given.

    Several events report one outcome (`checkout.session.completed` and `…async_payment_succeeded`, a
    redelivery under a new event id): the owner hears about it once.
    """
    assert ctx.tenant_id is not None
    told = await ctx.session.scalar(
        select(Notification.id).where(
            Notification.tenant_id == ctx.tenant_id,
            Notification.kind == kind,
            Notification.body.contains(about, autoescape=True),
        )
    )
    if told is None:
        await _tell(ctx, kind, title, body, link)


async def _unapplied(ctx: WebhookContext, invoice: Invoice, amount: Decimal, intent: str, why: str) -> None:
    """Money moved at Stripe that the invoice can't take (paid another way meanwhile, voided): say so once, plainly."""
    await _tell_once(
        ctx,
        "payment.unapplied",
        intent,
        f"A Stripe payment for {invoice.number} could not be applied",
        f"{format_money(amount)} was paid online (Stripe payment {intent}), but {why} "
        "It is not recorded against the invoice and is not sent to your accounting. "
        "If the customer paid twice, refund it in your Stripe Dashboard; fieldhub records the refund when Stripe "
        "reports it.",
        link=f"/invoices/{invoice.id}",
    )


async def _settle_succeeded(ctx: WebhookContext, payment: Payment) -> bool:
    """A pending payment's money arrived: count it, or, when the invoice can no longer take it, tell the owner."""
    try:
        await invoices.settle_payment(ctx.session, payment.tenant_id, payment.id, PaymentStatus.SUCCEEDED)
    except ValidationFailed as e:
        # Refused for good (the invoice was paid another way or voided while the bank debit settled): retrying
        # can't change that, so the event is done; the payment stays pending, out of the books.
        invoice = await ctx.session.get(Invoice, payment.invoice_id)
        assert invoice is not None
        reason = _why(invoice, e)
        await _unapplied(ctx, invoice, payment.amount, payment.reference, reason)
    return True


def _why(invoice: Invoice, error: ValidationFailed) -> str:
    if invoice.status == InvoiceStatus.PAID:
        return f"{invoice.number} had already been paid in full another way by the time the bank transfer cleared."
    if invoice.status == InvoiceStatus.VOID:
        return f"{invoice.number} was voided before the payment cleared."
    return "; ".join(error.errors.values())


# ---------------------------------------------------------------- checkout: payments


async def _record(
    ctx: WebhookContext, session_obj: dict[str, Any], *, pending: bool, method: PaymentMethod
) -> Payment | None:
    invoice = await _invoice_named(ctx, session_obj)
    intent = session_obj.get("payment_intent")
    if invoice is None or not intent or session_obj.get("amount_total") is None:
        return None
    values = {
        "amount": actions.from_minor(session_obj["amount_total"]),
        "received_on": _day(session_obj.get("created")),
        "method": method,
        "reference": str(intent)[:100],
        "notes": f"Paid online through Stripe (checkout {session_obj.get('id', '')}).",
    }
    try:
        if pending:
            payment = await invoices.record_pending_payment(ctx.session, invoice.tenant_id, invoice.id, values)
        else:
            payment = await invoices.record_payment(ctx.session, invoice.tenant_id, invoice.id, values)
    except ValidationFailed as e:
        # Money moved at Stripe but the invoice can't take it (paid another way meanwhile, voided): say so, don't retry.
        if not pending:
            await _unapplied(ctx, invoice, values["amount"], str(intent), _why(invoice, e))
        return None
    await ctx.add_link("payment_intent", str(intent), "payment", payment.id)
    return payment


async def checkout_completed(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    if obj.get("mode") != "payment":
        return False
    existing = await _payment_for_intent(ctx, obj.get("payment_intent"))
    paid = obj.get("payment_status") == "paid"
    if existing is not None:
        if paid and existing.status == PaymentStatus.PENDING:
            return await _settle_succeeded(ctx, existing)
        return False  # already recorded (a duplicate, or a later event got here first)
    # Card money is known at once; a bank debit completes `unpaid` and settles days later.
    method = PaymentMethod.CARD if paid else PaymentMethod.ACH
    return await _record(ctx, obj, pending=not paid, method=method) is not None


async def async_succeeded(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    existing = await _payment_for_intent(ctx, obj.get("payment_intent"))
    if existing is None:
        return await _record(ctx, obj, pending=False, method=PaymentMethod.ACH) is not None
    if existing.status == PaymentStatus.PENDING:
        return await _settle_succeeded(ctx, existing)
    return False


async def _fail(ctx: WebhookContext, payment: Payment, reason: str) -> bool:
    if payment.status != PaymentStatus.PENDING:
        return False
    await invoices.settle_payment(ctx.session, payment.tenant_id, payment.id, PaymentStatus.FAILED)
    invoice = await ctx.session.get(Invoice, payment.invoice_id)
    number = invoice.number if invoice else "an invoice"
    await _tell(
        ctx,
        "payment.failed",
        f"A bank payment for {number} failed",
        f"The {format_money(payment.amount)} bank transfer did not go through ({reason}). "
        "The invoice is still open; the pay link works again.",
        link=f"/invoices/{payment.invoice_id}",
    )
    return True


async def async_failed(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    existing = await _payment_for_intent(ctx, obj.get("payment_intent"))
    if existing is None:
        # The failure overtook the `completed` event: record the attempt as pending, then let it fail.
        existing = await _record(ctx, obj, pending=True, method=PaymentMethod.ACH)
        if existing is None:
            return False
    return await _fail(ctx, existing, "the bank declined it")


async def intent_failed(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    existing = await _payment_for_intent(ctx, obj.get("id"))
    if existing is None:
        return False  # a card declined on the checkout page: nothing was recorded, the customer can retry
    error = obj.get("last_payment_error") or {}
    return await _fail(ctx, existing, str(error.get("message") or error.get("code") or "payment failed"))


# ---------------------------------------------------------------- refunds


async def _refund(ctx: WebhookContext, refund: dict[str, Any]) -> bool:
    refund_id = refund.get("id")
    if not refund_id or refund.get("status") not in ("succeeded", "pending"):
        return False
    if await ctx.link("refund", refund_id) is not None:
        return False
    payment = await _payment_for_intent(ctx, refund.get("payment_intent"))
    if payment is None or payment.status != PaymentStatus.SUCCEEDED:
        # A refund of a charge that never counted here (never recorded, or one the invoice could not take):
        # nothing on the invoice to reverse. Its payout carries it as money out without a fieldhub refund.
        return False
    record = await invoices.refund_payment(
        ctx.session,
        payment.tenant_id,
        payment.id,
        {
            "amount": actions.from_minor(refund["amount"]),
            "refunded_on": _day(refund.get("created")),
            "reason": str(refund.get("reason") or "Refunded in Stripe").replace("_", " ")[:200],
            "reference": refund_id[:100],
        },
    )
    await ctx.add_link("refund", refund_id, "refund", record.id)
    return True


async def refund_event(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    return await _refund(ctx, obj)


async def charge_refunded(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    listed = (obj.get("refunds") or {}).get("data")
    if listed is None:  # not included since 2022-11-15: ask for them
        async with actions.client(ctx.env) as sdk:
            listed = await actions.list_all(sdk.v1.refunds.list_async, {"charge": obj["id"]}, _options(ctx))
    changed = False
    for refund in listed:
        changed |= await _refund(ctx, refund)
    return changed


# ---------------------------------------------------------------- disputes, payouts, the account


async def dispute_created(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    payment = await _payment_for_intent(ctx, obj.get("payment_intent"))
    amount = format_money(actions.from_minor(obj.get("amount") or 0))
    reason = str(obj.get("reason") or "no reason given").replace("_", " ")
    await _tell(
        ctx,
        "payment.disputed",
        "A customer disputed a card payment",
        f"{amount} is disputed ({reason}). Respond in your Stripe Dashboard before the deadline.",
        link=f"/invoices/{payment.invoice_id}" if payment else "",
    )
    return True


async def payout_failed(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    assert ctx.tenant_id is not None
    amount = format_money(actions.from_minor(obj.get("amount") or 0))
    code = str(obj.get("failure_code") or "unknown").replace("_", " ")
    body = (
        f"The {amount} payout could not be sent ({code}). The money is back in your Stripe balance; "
        "check the bank account in Stripe."
    )
    # Stripe may report a payout paid and only later failed: its deposit is already on record (and in the books).
    recorded = await deposits.find_deposit(ctx.session, ctx.tenant_id, KEY, str(obj.get("id") or ""))
    if recorded is not None:
        body += (
            f" fieldhub had already recorded it as a bank deposit on {recorded.arrival_date:%b %-d, %Y}; if it was "
            f"sent to your accounting, delete that deposit there (its memo names payout {recorded.source_id}) so "
            "your bank balance matches."
        )
    await _tell(ctx, "payout.failed", "A Stripe payout to your bank failed", body, link=connections.settings_link(KEY))
    return True


async def payout_paid(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    assert ctx.tenant_id is not None
    payout_id = obj.get("id")
    if not payout_id or obj.get("status") != "paid":
        return False
    if await deposits.find_deposit(ctx.session, ctx.tenant_id, KEY, payout_id) is not None:
        return False
    async with actions.client(ctx.env) as sdk:
        txns = await actions.list_all(
            sdk.v1.balance_transactions.list_async, {"payout": payout_id, "expand": ["data.source"]}, _options(ctx)
        )
    lines: list[deposits.DepositLineIn] = []
    for txn in txns:
        if txn.get("type") == "payout":
            continue  # the payout's own movement: the deposit itself
        raw_source = txn.get("source")
        source: dict[str, Any] = raw_source if isinstance(raw_source, dict) else {}
        fee = actions.from_minor(txn.get("fee") or 0)
        gross = actions.from_minor(txn["amount"])
        if txn.get("type") in ("charge", "payment"):
            payment = await _payment_for_intent(ctx, source.get("payment_intent"))
            # Only money that counts on an invoice is linked (and so reaches the books as that payment); a
            # charge the invoice could not take is carried as what it is: money in without a fieldhub payment.
            counted = payment is not None and payment.status == PaymentStatus.SUCCEEDED
            lines.append(
                deposits.DepositLineIn(
                    DepositLineKind.PAYMENT,
                    gross,
                    payment_id=payment.id if counted and payment else None,
                    source_id=txn["id"],
                    description=str(txn.get("description") or source.get("description") or "Card or bank payment"),
                )
            )
        elif txn.get("type") in ("refund", "payment_refund"):
            link = await ctx.link("refund", source.get("id", "")) if source else None
            lines.append(
                deposits.DepositLineIn(
                    DepositLineKind.REFUND,
                    gross,
                    refund_id=link.local_id if link else None,
                    source_id=txn["id"],
                    description=str(txn.get("description") or "Refund"),
                )
            )
        else:
            lines.append(
                deposits.DepositLineIn(
                    DepositLineKind.ADJUSTMENT, gross, source_id=txn["id"], description=str(txn.get("type") or "")
                )
            )
        if fee:
            lines.append(
                deposits.DepositLineIn(
                    DepositLineKind.FEE, -fee, source_id=txn["id"], description="Stripe processing fees"
                )
            )
    await deposits.record_deposit(
        ctx.session,
        ctx.tenant_id,
        source=KEY,
        source_id=payout_id,
        net=actions.from_minor(obj["amount"]),
        arrival_date=_day(obj.get("arrival_date")),
        lines=lines,
        currency=str(obj.get("currency") or "usd"),
    )
    return True


async def deauthorized(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    conn = ctx.connection
    assert conn is not None
    if conn.status == ConnectionStatus.DISCONNECTED:
        return False
    connections.forget_tokens(conn)
    conn.status = ConnectionStatus.DISCONNECTED
    conn.disconnected_at = utcnow()
    await _tell(
        ctx,
        "connection.disconnected",
        "Stripe was disconnected",
        "The Stripe account removed fieldhub's access. Payments already received stay; Pay Now links stop "
        "working until you connect again.",
        link=connections.settings_link(KEY),
    )
    return True


async def account_updated(ctx: WebhookContext, obj: dict[str, Any]) -> bool:
    conn = ctx.connection
    assert conn is not None
    summary = actions.summary_of(obj)
    details = {**(conn.account_details or {}), **{k: v for k, v in summary.items() if k != "name"}}
    if details == conn.account_details and conn.account_name == summary["name"]:
        return False
    conn.account_details = details
    conn.account_name = summary["name"]
    return True


HANDLERS = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": async_succeeded,
    "checkout.session.async_payment_failed": async_failed,
    "payment_intent.payment_failed": intent_failed,
    "charge.refunded": charge_refunded,
    "refund.created": refund_event,
    "refund.updated": refund_event,
    "charge.dispute.created": dispute_created,
    "payout.paid": payout_paid,
    "payout.reconciliation_completed": payout_paid,
    "payout.failed": payout_failed,
    "account.application.deauthorized": deauthorized,
    "account.updated": account_updated,
}
