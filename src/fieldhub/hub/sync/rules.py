"""Which local changes are pushed, and as what operation: the status rules, in one place.

A DRAFT invoice stays out of the books; a VOID invoice is pushed as a void only if it was ever synced
(a never-synced one is skipped); an ACH payment still in flight or failed is not money yet and is
never pushed. Everything else that changes is pushed as an upsert. Rules read the status that core
events carry in their data (`status`), so no extra query runs on the write path.
"""

from __future__ import annotations

from fieldhub.core.events import DomainEvent
from fieldhub.hub.sync.models import Operation

NOT_PUSHED_INVOICE = {"DRAFT"}
# A payment or refund changes only what an invoice still owes, which QuickBooks derives from the Payment (or
# RefundReceipt) itself: an invoice already there is not sent again for it (nothing in its body changed).
BALANCE_ONLY_INVOICE = {"paid", "partially_paid", "refunded", "payment_voided"}
VOID_INVOICE = {"VOID"}
NOT_PUSHED_PAYMENT = {"pending", "failed"}
VOIDED_PAYMENT = "voided"  # taken back (voided or deleted in the books): voided at the provider too, if it got there


def operation_for(event: DomainEvent, already_synced: bool) -> Operation | None:
    """The operation this change calls for at a provider, or None when nothing should be sent."""
    status = str(event.data.get("status", ""))
    if event.kind == "deleted":
        return Operation.DELETE if already_synced else None
    if event.entity == "invoice":
        if status in NOT_PUSHED_INVOICE:
            return None
        if status in VOID_INVOICE:
            return Operation.VOID if already_synced else None
        if event.kind in BALANCE_ONLY_INVOICE and already_synced:
            return None
    if event.entity == "payment" and status == VOIDED_PAYMENT:
        return Operation.VOID if already_synced else None
    if event.entity == "payment" and status in NOT_PUSHED_PAYMENT:
        return Operation.DELETE if already_synced and status == "failed" else None
    return Operation.UPSERT
