"""Invoices, their payments and refunds: the only writer of those tables, scoped to one tenant.

Totals follow the rules stated in fieldhub.core.invoices.totals (half-up to the cent, the invoice
discount allocated pro rata, one rounding for tax). Status rules:

- create: DRAFT (default) or OPEN. Numbers are "INV-1001", "INV-1002", … per tenant, computed inside the
  writing transaction after taking a row lock on the tenant, so two concurrent creates never get the same
  number (the unique constraint on (tenant_id, number) is the backstop).
- update: only while DRAFT, OPEN or SENT and nothing is paid (amount paid = 0). Lines are replaced whole.
- send: DRAFT or OPEN → SENT, sets sent_at.
- record payment: not on a DRAFT or VOID invoice; the amount must be > 0 and ≤ the balance (no
  overpayment). Status becomes PARTIALLY_PAID or PAID.
- record pending payment (money in flight, e.g. a bank debit that settles days later): the same checks,
  but the payment is PENDING and counts toward nothing — amount paid, balance and status don't move.
- settle payment: PENDING → SUCCEEDED (now it counts: the overpayment check runs again, status follows)
  or PENDING → FAILED (it never counted; it stays on record as failed). Settling to the state a payment
  already has does nothing, so a repeated notice is harmless; any other change is refused.
- refund: of a succeeded payment, up to what is left of it unrefunded. The invoice's amount paid, balance
  and status are recomputed (a fully refunded invoice goes back to SENT, or OPEN if it was never sent).
- void: any status but VOID, and only while the amount paid is 0 — money held against an invoice must be
  refunded first, so a void never hides a payment. A VOID invoice keeps its lines and totals for the
  record, owes nothing (balance 0) and can't be changed, paid or sent.

Every write locks the invoice row first (a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite),
so concurrent payments can't both pass the overpayment check.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.customers.models import Customer
from fieldhub.core.errors import NotFound, ValidationFailed
from fieldhub.core.events import record_event
from fieldhub.core.invoices.models import Invoice, InvoiceLine, InvoiceStatus
from fieldhub.core.invoices.schemas import InvoiceIn, InvoiceLineIn, PaymentIn, RefundIn
from fieldhub.core.invoices.totals import LineFigures, compute_totals, line_amount
from fieldhub.core.items.models import Item, TaxRate
from fieldhub.core.money import ZERO, format_money
from fieldhub.core.paging import Page, paginate
from fieldhub.core.payments.models import Payment, PaymentStatus, Refund
from fieldhub.core.validation import MAX_AMOUNT, parse
from fieldhub.db import utcnow

NUMBER_PREFIX = "INV-"
FIRST_NUMBER = 1001
EDITABLE = (InvoiceStatus.DRAFT, InvoiceStatus.OPEN, InvoiceStatus.SENT)
SENDABLE = (InvoiceStatus.DRAFT, InvoiceStatus.OPEN)
HEADER_FIELDS = ("customer_id", "issue_date", "due_date", "tax_rate_id", "discount_amount", "memo", "notes")


def _today() -> date:
    return utcnow().date()


def _invoice_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "status": str(invoice.status),
        "total": str(invoice.total),
        "balance": str(invoice.balance),
    }


# ---------------------------------------------------------------- reads


async def get_invoice(session: AsyncSession, tenant_id: int, invoice_id: int) -> Invoice:
    """Another tenant's invoice is NotFound, exactly like a missing one."""
    invoice = await session.scalar(select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id))
    if invoice is None:
        raise NotFound("invoice", invoice_id)
    return invoice


async def list_invoices(
    session: AsyncSession,
    tenant_id: int,
    *,
    q: str = "",
    status: InvoiceStatus | str | None = None,
    customer_id: int | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Invoice]:
    """Newest first; `q` matches the number or the customer's name or company."""
    query = select(Invoice).join(Customer, Invoice.customer_id == Customer.id).where(Invoice.tenant_id == tenant_id)
    q = q.strip()[:200]
    if q:
        query = query.where(
            or_(
                Invoice.number.icontains(q, autoescape=True),
                Customer.display_name.icontains(q, autoescape=True),
                Customer.company.icontains(q, autoescape=True),
            )
        )
    if status:
        query = query.where(Invoice.status == InvoiceStatus(status))
    if customer_id is not None:
        query = query.where(Invoice.customer_id == customer_id)
    query = query.order_by(Invoice.issue_date.desc(), Invoice.id.desc())
    return await paginate(session, query, page, per_page)


async def invoice_payments(session: AsyncSession, tenant_id: int, invoice_id: int) -> list[Payment]:
    rows = await session.scalars(
        select(Payment)
        .where(Payment.tenant_id == tenant_id, Payment.invoice_id == invoice_id)
        .order_by(Payment.received_on, Payment.id)
    )
    return list(rows)


async def invoice_refunds(session: AsyncSession, tenant_id: int, invoice_id: int) -> list[Refund]:
    rows = await session.scalars(
        select(Refund)
        .where(Refund.tenant_id == tenant_id, Refund.invoice_id == invoice_id)
        .order_by(Refund.refunded_on, Refund.id)
    )
    return list(rows)


async def refunded_amount(session: AsyncSession, payment_id: int) -> Decimal:
    total = await session.scalar(select(func.sum(Refund.amount)).where(Refund.payment_id == payment_id))
    return total if total is not None else ZERO


# ---------------------------------------------------------------- locking and numbering


async def _lock_tenant(session: AsyncSession, tenant_id: int) -> None:
    # Writing the row's own value takes a row lock on PostgreSQL and the database write lock on SQLite,
    # held until commit: concurrent creates for one tenant compute their numbers one after the other.
    await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(updated_at=Tenant.updated_at))


async def _locked_invoice(session: AsyncSession, tenant_id: int, invoice_id: int) -> Invoice:
    await session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id)
        .values(updated_at=Invoice.updated_at)
        .execution_options(synchronize_session=False)
    )
    invoice = await session.scalar(
        select(Invoice)
        .where(Invoice.id == invoice_id, Invoice.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )
    if invoice is None:
        raise NotFound("invoice", invoice_id)
    return invoice


async def next_invoice_number(session: AsyncSession, tenant_id: int) -> str:
    """The next "INV-n": one more than the largest numeric suffix so far. Call with the tenant locked."""
    rows = await session.scalars(
        select(Invoice.number)
        .where(Invoice.tenant_id == tenant_id, Invoice.number.startswith(NUMBER_PREFIX, autoescape=True))
        .order_by(func.length(Invoice.number).desc(), Invoice.number.desc())
        .limit(50)
    )
    for number in rows:
        suffix = number[len(NUMBER_PREFIX) :]
        if suffix.isdigit():
            return f"{NUMBER_PREFIX}{max(int(suffix) + 1, FIRST_NUMBER)}"
    return f"{NUMBER_PREFIX}{FIRST_NUMBER}"


# ---------------------------------------------------------------- create and update


async def _build(
    session: AsyncSession, tenant_id: int, values: InvoiceIn, current: Invoice | None = None
) -> tuple[Customer, TaxRate | None, list[InvoiceLine], Any]:
    """Check everything that needs the database, collecting every error before refusing."""
    errors: dict[str, str] = {}
    customer = None
    if values.customer_id is None:
        errors["customer_id"] = "Choose a customer."
    else:
        customer = await session.scalar(
            select(Customer).where(Customer.id == values.customer_id, Customer.tenant_id == tenant_id)
        )
        if customer is None:
            errors["customer_id"] = "Choose a customer from the list: that one doesn't exist."
        elif not customer.active and not (current and current.customer_id == customer.id):
            errors["customer_id"] = "That customer is inactive: reactivate them first."

    tax_rate = None
    if values.tax_rate_id is not None:
        tax_rate = await session.scalar(
            select(TaxRate).where(TaxRate.id == values.tax_rate_id, TaxRate.tenant_id == tenant_id)
        )
        if tax_rate is None:
            errors["tax_rate_id"] = "Choose a tax rate from the list: that one doesn't exist."
        elif not tax_rate.active and not (current and current.tax_rate_id == tax_rate.id):
            errors["tax_rate_id"] = "That tax rate is inactive."

    issue_date = values.issue_date or (current.issue_date if current else _today())
    if values.due_date is not None and values.due_date < issue_date:
        errors["due_date"] = "The due date can't be before the issue date."

    item_ids = {line.item_id for line in values.lines if line.item_id is not None}
    items: dict[int, Item] = {}
    if item_ids:
        found = await session.scalars(select(Item).where(Item.id.in_(item_ids), Item.tenant_id == tenant_id))
        items = {item.id: item for item in found}
    current_item_ids = {line.item_id for line in current.lines} if current else set()

    lines: list[InvoiceLine] = []
    figures: list[LineFigures] = []
    for i, line in enumerate(values.lines):
        where = f"lines.{i}"
        item = items.get(line.item_id) if line.item_id is not None else None
        if line.item_id is not None and item is None:
            errors[f"{where}.item_id"] = "Choose an item from the list: that one doesn't exist."
            continue
        if item is not None and not item.active and item.id not in current_item_ids:
            errors[f"{where}.item_id"] = "That item is inactive."
            continue
        unit_price = line.unit_price if line.unit_price is not None else (item.unit_price if item else None)
        if unit_price is None:
            errors[f"{where}.unit_price"] = "Enter a price."
            continue
        description = line.description or (item.description or item.name if item else "")
        if not description:
            errors[f"{where}.description"] = "Describe the work or choose an item."
            continue
        taxable = line.taxable if line.taxable is not None else bool(item and item.taxable)
        fig = LineFigures(line.quantity, unit_price, line.discount_amount, taxable)
        if line.discount_amount > fig.gross:
            errors[f"{where}.discount_amount"] = "The line discount can't exceed quantity × price."
            continue
        figures.append(fig)
        lines.append(
            InvoiceLine(
                position=i,
                item_id=line.item_id,
                description=description,
                quantity=line.quantity,
                unit_price=unit_price,
                discount_amount=line.discount_amount,
                amount=line_amount(line.quantity, unit_price, line.discount_amount),
                taxable=taxable,
            )
        )
    if errors:
        raise ValidationFailed(errors)
    try:
        totals = compute_totals(figures, values.discount_amount, tax_rate.rate if tax_rate else None)
    except ValueError:
        subtotal = sum((f.amount for f in figures), ZERO)
        raise ValidationFailed.one(
            "discount_amount", f"The discount can't exceed the subtotal ({format_money(subtotal)})."
        ) from None
    if max(totals.subtotal, totals.total) > MAX_AMOUNT:
        # Each amount was in bounds, but quantity × price over the lines can still pass what the columns hold.
        raise ValidationFailed.one("lines", f"The invoice comes to more than {format_money(MAX_AMOUNT)}.")
    assert customer is not None
    return customer, tax_rate, lines, totals


def _apply_totals(invoice: Invoice, totals: Any) -> None:
    invoice.subtotal = totals.subtotal
    invoice.discount_total = totals.discount
    invoice.tax_total = totals.tax
    invoice.total = totals.total
    invoice.balance = ZERO if invoice.status == InvoiceStatus.VOID else totals.total - invoice.amount_paid


async def create_invoice(session: AsyncSession, tenant_id: int, data: InvoiceIn | Mapping[str, Any]) -> Invoice:
    values = parse(InvoiceIn, data)
    customer, tax_rate, lines, totals = await _build(session, tenant_id, values)
    await _lock_tenant(session, tenant_id)
    invoice = Invoice(
        tenant_id=tenant_id,
        version=1,
        number=await next_invoice_number(session, tenant_id),
        customer_id=customer.id,
        customer=customer,
        status=InvoiceStatus(values.status),
        issue_date=values.issue_date or _today(),
        due_date=values.due_date,
        tax_rate_id=tax_rate.id if tax_rate else None,
        discount_amount=values.discount_amount,
        memo=values.memo,
        notes=values.notes,
        public_token=secrets.token_urlsafe(32),
        amount_paid=ZERO,
        lines=lines,
    )
    _apply_totals(invoice, totals)
    session.add(invoice)
    await session.flush()
    await record_event(session, "invoice", invoice, "created", _invoice_data(invoice))
    return invoice


def _line_dict(line: InvoiceLine) -> dict[str, Any]:
    return {
        "item_id": line.item_id,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "discount_amount": line.discount_amount,
        "taxable": line.taxable,
    }


async def update_invoice(
    session: AsyncSession, tenant_id: int, invoice_id: int, data: InvoiceIn | Mapping[str, Any]
) -> Invoice:
    """Header fields present in `data` change; `lines`, when given, replace every line."""
    invoice = await _locked_invoice(session, tenant_id, invoice_id)
    if invoice.status not in EDITABLE or invoice.amount_paid != ZERO:
        raise ValidationFailed.one(
            "status",
            f"A {invoice.status.lower().replace('_', ' ')} invoice can't be edited."
            if invoice.status not in EDITABLE
            else "An invoice with payments can't be edited: refund them first.",
        )
    given = data.model_dump(exclude_unset=True) if isinstance(data, InvoiceIn) else dict(data)
    merged: dict[str, Any] = {f: getattr(invoice, f) for f in HEADER_FIELDS}
    merged["lines"] = [_line_dict(line) for line in invoice.lines]
    merged.update({k: v for k, v in given.items() if k in (*HEADER_FIELDS, "lines")})
    values = parse(InvoiceIn, merged)
    customer, tax_rate, lines, totals = await _build(session, tenant_id, values, current=invoice)

    before = (
        {f: getattr(invoice, f) for f in HEADER_FIELDS},
        [_line_dict(line) for line in invoice.lines],
    )
    after = (
        {
            "customer_id": customer.id,
            "issue_date": values.issue_date or invoice.issue_date,
            "due_date": values.due_date,
            "tax_rate_id": tax_rate.id if tax_rate else None,
            "discount_amount": values.discount_amount,
            "memo": values.memo,
            "notes": values.notes,
        },
        [_line_dict(line) for line in lines],
    )
    if before == after:
        return invoice
    for field, value in after[0].items():
        setattr(invoice, field, value)
    invoice.customer = customer
    if before[1] != after[1]:
        invoice.lines = lines
    _apply_totals(invoice, totals)
    invoice.version += 1
    await session.flush()
    await record_event(session, "invoice", invoice, "updated", _invoice_data(invoice))
    return invoice


# ---------------------------------------------------------------- status changes


async def send_invoice(session: AsyncSession, tenant_id: int, invoice_id: int) -> Invoice:
    invoice = await _locked_invoice(session, tenant_id, invoice_id)
    if invoice.status not in SENDABLE:
        raise ValidationFailed.one("status", f"Only a draft or open invoice can be sent; this one is {invoice.status}.")
    invoice.status = InvoiceStatus.SENT
    invoice.sent_at = utcnow()
    invoice.version += 1
    await session.flush()
    await record_event(session, "invoice", invoice, "sent", _invoice_data(invoice))
    return invoice


async def void_invoice(session: AsyncSession, tenant_id: int, invoice_id: int) -> Invoice:
    invoice = await _locked_invoice(session, tenant_id, invoice_id)
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationFailed.one("status", "This invoice is already void.")
    if invoice.amount_paid != ZERO:
        raise ValidationFailed.one(
            "status", f"{format_money(invoice.amount_paid)} has been paid on this invoice: refund it before voiding."
        )
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    invoice.balance = ZERO
    invoice.version += 1
    await session.flush()
    await record_event(session, "invoice", invoice, "voided", _invoice_data(invoice))
    return invoice


async def _recompute_paid(session: AsyncSession, invoice: Invoice) -> None:
    """amount paid = succeeded payments − their refunds; balance and status follow."""
    paid = await session.scalar(
        select(func.sum(Payment.amount)).where(
            Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )
    refunded = await session.scalar(
        select(func.sum(Refund.amount))
        .join(Payment, Refund.payment_id == Payment.id)
        .where(Refund.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
    )
    invoice.amount_paid = (paid or ZERO) - (refunded or ZERO)
    if invoice.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
        invoice.balance = ZERO if invoice.status == InvoiceStatus.VOID else invoice.total - invoice.amount_paid
        return
    invoice.balance = invoice.total - invoice.amount_paid
    if invoice.amount_paid <= ZERO:
        invoice.status = InvoiceStatus.SENT if invoice.sent_at else InvoiceStatus.OPEN
    elif invoice.balance <= ZERO:
        invoice.status = InvoiceStatus.PAID
    else:
        invoice.status = InvoiceStatus.PARTIALLY_PAID


async def record_payment(
    session: AsyncSession, tenant_id: int, invoice_id: int, data: PaymentIn | Mapping[str, Any]
) -> Payment:
    payment, invoice = await _new_payment(session, tenant_id, invoice_id, data, PaymentStatus.SUCCEEDED)
    await _paid_changed(session, invoice, payment)
    return payment


async def record_pending_payment(
    session: AsyncSession, tenant_id: int, invoice_id: int, data: PaymentIn | Mapping[str, Any]
) -> Payment:
    """A payment whose money has not arrived yet: on record, but out of amount paid and balance until settled."""
    payment, _ = await _new_payment(session, tenant_id, invoice_id, data, PaymentStatus.PENDING)
    return payment


async def _new_payment(
    session: AsyncSession, tenant_id: int, invoice_id: int, data: PaymentIn | Mapping[str, Any], status: PaymentStatus
) -> tuple[Payment, Invoice]:
    values = parse(PaymentIn, data)
    invoice = await _locked_invoice(session, tenant_id, invoice_id)
    if invoice.status == InvoiceStatus.DRAFT:
        raise ValidationFailed.one("status", "A draft invoice can't take payments: send it first.")
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationFailed.one("status", "A void invoice can't take payments.")
    if values.amount > invoice.balance:
        raise ValidationFailed.one("amount", f"That is more than the balance due ({format_money(invoice.balance)}).")
    payment = Payment(
        tenant_id=tenant_id,
        version=1,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        amount=values.amount,
        received_on=values.received_on or _today(),
        method=values.method,
        status=status,
        reference=values.reference,
        notes=values.notes,
    )
    session.add(payment)
    await session.flush()
    await _payment_event(session, payment, invoice, "created")
    return payment, invoice


async def _payment_event(session: AsyncSession, payment: Payment, invoice: Invoice, kind: str) -> None:
    data = {
        "invoice_id": invoice.id,
        "customer_id": invoice.customer_id,
        "amount": str(payment.amount),
        "status": str(payment.status),
    }
    await record_event(session, "payment", payment, kind, data)


async def _paid_changed(session: AsyncSession, invoice: Invoice, payment: Payment, *, voided: bool = False) -> None:
    """A payment now counts, or no longer does (`voided`): the invoice's paid amount, balance and status follow."""
    await _recompute_paid(session, invoice)
    invoice.version += 1
    await session.flush()
    kind = "paid" if invoice.status == InvoiceStatus.PAID else "partially_paid"
    if voided:
        kind = "payment_voided"
    await record_event(session, "invoice", invoice, kind, {**_invoice_data(invoice), "payment_id": payment.id})


async def _locked_payment(session: AsyncSession, tenant_id: int, payment_id: int) -> tuple[Payment, Invoice]:
    """The payment, read again under its invoice's lock (a concurrent settle or void may have won)."""
    payment = await session.scalar(select(Payment).where(Payment.id == payment_id, Payment.tenant_id == tenant_id))
    if payment is None:
        raise NotFound("payment", payment_id)
    invoice = await _locked_invoice(session, tenant_id, payment.invoice_id)
    await session.refresh(payment)
    return payment, invoice


def _not_refundable(payment: Payment) -> ValidationFailed:
    if payment.status == PaymentStatus.PENDING:
        return ValidationFailed.one(
            "status",
            "This bank payment is still clearing: it can be refunded once it has cleared (usually within 4 "
            "business days). If it fails, nothing was taken and there is nothing to refund.",
        )
    return ValidationFailed.one("status", f"Only a succeeded payment can be refunded; this one is {payment.status}.")


async def check_refund(
    session: AsyncSession, tenant_id: int, payment_id: int, data: RefundIn | Mapping[str, Any]
) -> tuple[Payment, RefundIn]:
    """What refund_payment would refuse, found without writing or locking anything: a refund that moves money
    elsewhere first (a payments provider's) is checked here before it is asked for, then recorded."""
    values = parse(RefundIn, data)
    payment = await session.scalar(select(Payment).where(Payment.id == payment_id, Payment.tenant_id == tenant_id))
    if payment is None:
        raise NotFound("payment", payment_id)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise _not_refundable(payment)
    refundable = payment.amount - await refunded_amount(session, payment.id)
    if values.amount > refundable:
        raise ValidationFailed.one("amount", f"At most {format_money(refundable)} of this payment can be refunded.")
    return payment, values


async def refund_payment(
    session: AsyncSession, tenant_id: int, payment_id: int, data: RefundIn | Mapping[str, Any]
) -> Refund:
    values = parse(RefundIn, data)
    payment = await session.scalar(select(Payment).where(Payment.id == payment_id, Payment.tenant_id == tenant_id))
    if payment is None:
        raise NotFound("payment", payment_id)
    invoice = await _locked_invoice(session, tenant_id, payment.invoice_id)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise _not_refundable(payment)
    refundable = payment.amount - await refunded_amount(session, payment.id)
    if values.amount > refundable:
        raise ValidationFailed.one("amount", f"At most {format_money(refundable)} of this payment can be refunded.")
    refund = Refund(
        tenant_id=tenant_id,
        version=1,
        payment_id=payment.id,
        invoice_id=invoice.id,
        amount=values.amount,
        refunded_on=values.refunded_on or _today(),
        reason=values.reason,
        reference=values.reference,
    )
    session.add(refund)
    await session.flush()
    await record_event(
        session,
        "refund",
        refund,
        "created",
        {"invoice_id": invoice.id, "payment_id": payment.id, "amount": str(refund.amount)},
    )
    await _recompute_paid(session, invoice)
    invoice.version += 1
    await session.flush()
    await record_event(session, "invoice", invoice, "refunded", {**_invoice_data(invoice), "refund_id": refund.id})
    return refund


async def settle_payment(
    session: AsyncSession, tenant_id: int, payment_id: int, outcome: PaymentStatus | str
) -> Payment:
    """A pending payment's money arrived (SUCCEEDED) or bounced (FAILED); the same outcome again is a no-op."""
    outcome = PaymentStatus(outcome)
    if outcome == PaymentStatus.PENDING:
        raise ValidationFailed.one("status", "A payment can only settle as succeeded or failed.")
    payment, invoice = await _locked_payment(session, tenant_id, payment_id)
    if payment.status == outcome:
        return payment
    if payment.status != PaymentStatus.PENDING:
        raise ValidationFailed.one("status", f"This payment already {payment.status}; it can't become {outcome}.")
    if outcome == PaymentStatus.SUCCEEDED and payment.amount > invoice.balance:
        raise ValidationFailed.one("amount", f"That is more than the balance due ({format_money(invoice.balance)}).")
    payment.status = outcome
    payment.version += 1
    await session.flush()
    await _payment_event(session, payment, invoice, str(outcome))
    if outcome == PaymentStatus.SUCCEEDED:
        await _paid_changed(session, invoice, payment)
    return payment


async def void_payment(session: AsyncSession, tenant_id: int, payment_id: int, reason: str = "") -> Payment:
    """Take a recorded payment back (it was voided or deleted in the books): out of amount paid; the invoice reopens.

    A payment with refunds is refused (the refunds would point at money that never counted); voiding
    twice is a no-op.
    """
    payment, invoice = await _locked_payment(session, tenant_id, payment_id)
    if payment.status == PaymentStatus.VOIDED:
        return payment
    if await refunded_amount(session, payment.id) > ZERO:
        raise ValidationFailed.one("status", "This payment has refunds: it can't be voided.")
    was_counted = payment.status == PaymentStatus.SUCCEEDED
    payment.status = PaymentStatus.VOIDED
    if reason:
        payment.notes = (payment.notes + "\n" if payment.notes else "") + reason
    payment.version += 1
    await session.flush()
    await _payment_event(session, payment, invoice, "voided")
    if was_counted:
        await _paid_changed(session, invoice, payment, voided=True)
    return payment


def line_inputs(invoice: Invoice) -> Sequence[InvoiceLineIn]:
    """The invoice's lines as inputs, e.g. to prefill an edit form or copy an invoice."""
    return [InvoiceLineIn(**_line_dict(line)) for line in invoice.lines]
