"""Refunds: a payment a payments provider took is refunded there (the money goes back), then recorded here once.

Any other payment (cash, a check, a card run on another terminal) is only recorded: nothing is sent to a
payments provider for it, and record sync never sends refunds to one. A provider's payment is known by
its remote link (written when its event recorded the payment) and refunded through its `actions.refund`.

The provider reports the refund too (an event, processed by the webhook inbox under the connection's row
lock). Recording here takes the same lock and looks for the refund's link first, so whichever comes
second finds it recorded: one refund, never two. A refund the provider made whose recording here fails
is recorded when its event comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.core.errors import ValidationFailed
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.schemas import RefundIn
from fieldhub.core.payments.models import Payment, Refund
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.spec import Capability, ProviderSpec
from fieldhub.hub.webhooks.inbox import find_link
from fieldhub.hub.webhooks.models import RemoteLink
from fieldhub.log import get_logger

log = get_logger(__name__)
LINK_KIND = "refund"  # a refund's remote link, as the providers' events write it


class RefundRefused(Exception):
    """The payments provider would not refund; `message` is its reason in plain words (no secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class TakenBy:
    """The payments provider a payment came through: its spec, its actions and the payment's remote link."""

    spec: ProviderSpec
    actions: ModuleType
    link: RemoteLink


async def taken_by(session: AsyncSession, payment: Payment) -> TakenBy | None:
    """The payments provider that took this payment and can refund it, if one did."""
    for spec in registry.all():
        if spec.category != Capability.PAYMENTS:
            continue
        module = registry.import_module(spec.key, "actions")
        if module is None or not hasattr(module, "refund"):
            continue
        link = await session.scalar(
            select(RemoteLink).where(
                RemoteLink.tenant_id == payment.tenant_id,
                RemoteLink.provider == spec.key,
                RemoteLink.local_entity == "payment",
                RemoteLink.local_id == payment.id,
            )
        )
        if link is not None:
            return TakenBy(spec, module, link)
    return None


def idempotency_key(payment: Payment, refunded: Decimal, amount: Decimal) -> str:
    """One refund per (payment, what was refunded before, amount): a double submit asks once."""
    return f"fieldhub-refund-{payment.tenant_id}-{payment.id}-{refunded}-{amount}"


async def refund(
    env: OAuthEnv, session: AsyncSession, tenant_id: int, payment_id: int, data: RefundIn | Mapping[str, Any]
) -> Refund:
    """Refund a payment: at its payments provider when one took it, then here. ValidationFailed says why not.

    The caller commits. A pending bank payment, an amount over what is left, a provider that is not
    connected or that refuses: nothing is sent and nothing is written.
    """
    payment, values = await invoices.check_refund(session, tenant_id, payment_id, data)
    taken = await taken_by(session, payment)
    if taken is None:
        return await invoices.refund_payment(session, tenant_id, payment_id, data)
    name = taken.spec.name
    conn = await session.scalar(
        select(Connection)
        .where(
            Connection.tenant_id == tenant_id,
            Connection.provider == taken.spec.key,
            Connection.status == ConnectionStatus.CONNECTED,
        )
        .order_by(Connection.id.desc())
        .limit(1)
    )
    if conn is None:
        raise ValidationFailed.one(
            "status",
            f"This payment was made through {name}, which is not connected: the money can only go back through "
            f"{name}. Reconnect it under Settings → Billing & Taxes, then refund again.",
        )
    refunded = await invoices.refunded_amount(session, payment.id)
    key = idempotency_key(payment, refunded, values.amount)
    connection_id = conn.id
    try:
        remote_id = await taken.actions.refund(
            env, conn, taken.link.remote_id, values.amount, reason=values.reason, idempotency_key=key
        )
    except RefundRefused as e:
        log.warning("refund.refused", tenant_id=tenant_id, provider=taken.spec.key)
        raise ValidationFailed.one("status", f"{name} did not refund it: {e.message}") from None
    # The inbox's lock on the connection: the provider's own report of this refund is applied before or after.
    await session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(updated_at=Connection.updated_at)
        .execution_options(synchronize_session=False)
    )
    link = await find_link(session, taken.spec.key, LINK_KIND, remote_id)
    if link is not None:
        found = await session.get(Refund, link.local_id)
        assert found is not None
        return found  # its event came first and recorded it
    record = await invoices.refund_payment(
        session, tenant_id, payment_id, {**values.model_dump(), "reference": remote_id[:100]}
    )
    session.add(
        RemoteLink(
            tenant_id=tenant_id,
            provider=taken.spec.key,
            kind=LINK_KIND,
            remote_id=remote_id,
            local_entity="refund",
            local_id=record.id,
        )
    )
    await session.flush()
    log.info("refund.made", tenant_id=tenant_id, provider=taken.spec.key, refund_id=record.id)
    return record
