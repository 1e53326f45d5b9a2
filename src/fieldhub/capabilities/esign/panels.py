"""The e-signature panel on an estimate's page (web/routes/estimates.py asks each capability's `estimate_panel`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fieldhub.capabilities.esign import service
from fieldhub.capabilities.esign.models import OPEN, EnvelopeStatus
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.hub import registry
from fieldhub.web.kit import Ctx

BADGES = {
    EnvelopeStatus.SENDING: "grey",
    EnvelopeStatus.SENT: "blue",
    EnvelopeStatus.DELIVERED: "blue",
    EnvelopeStatus.SIGNED: "green",
    EnvelopeStatus.DECLINED: "red",
    EnvelopeStatus.VOIDED: "grey",
    EnvelopeStatus.EXPIRED: "grey",
    EnvelopeStatus.FAILED: "red",
}
WORDS = {
    EnvelopeStatus.SENDING: "Sending",
    EnvelopeStatus.SENT: "Sent for signature",
    EnvelopeStatus.DELIVERED: "Viewed by the customer",
    EnvelopeStatus.SIGNED: "Signed",
    EnvelopeStatus.DECLINED: "Declined",
    EnvelopeStatus.VOIDED: "Voided",
    EnvelopeStatus.EXPIRED: "Expired",
    EnvelopeStatus.FAILED: "Not sent",
}


async def estimate_panel(request: Request, ctx: Ctx, estimate: Estimate) -> dict[str, Any] | None:
    if not service.services():
        return None
    rows = await service.envelopes_of(ctx.db, ctx.tenant_id, estimate.id)
    conns = await service.connected(ctx.db, ctx.tenant_id)
    allowed = await service.may_send(ctx.db, ctx.user, estimate)
    current = rows[0] if rows else None
    is_open = current is not None and current.status in OPEN and not current.void_requested
    can_send = (
        allowed
        and bool(conns)
        and estimate.status in (EstimateStatus.DRAFT, EstimateStatus.SENT)
        and not is_open
        and bool(estimate.customer.email)
    )
    return {
        "template": "esign/_estimate.html",
        "esign": {
            "current": current,
            "history": rows[1:6],
            "conns": [(c.id, f"{registry.get(c.provider).name} · {c.account_name}") for c in conns],
            "names": {c.id: registry.get(c.provider).name for c in conns},
            "provider_name": registry.get(current.provider).name if current else "",
            "allowed": allowed,
            "can_send": can_send,
            "is_open": is_open,
            "changed": current is not None and current.void_requested,
            "badges": BADGES,
            "words": WORDS,
            "timeline": service.timeline(current) if current else [],
            "error": request.query_params.get("esign_error", "")[:300],
            "customer_email": estimate.customer.email,
        },
    }
