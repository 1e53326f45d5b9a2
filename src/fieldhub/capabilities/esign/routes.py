"""E-signature pages: send an estimate for signature, sign here, come back from signing, void, download."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fieldhub.capabilities.esign import service
from fieldhub.capabilities.esign.models import EnvelopeStatus
from fieldhub.core.errors import ValidationFailed
from fieldhub.core.validation import Id
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import PageRoute, WebCtx, form_data, redirect

router = APIRouter(route_class=PageRoute)
MESSAGES = {"signing_complete", "decline", "cancel", "session_timeout", "ttl_expired", "viewing_complete"}


def _back(estimate_id: int, *, msg: str = "", error: str = "") -> Response:
    query = f"msg={msg}" if msg else f"esign_error={quote(error[:300])}"
    return redirect(f"/estimates/{estimate_id}?{query}#esign")


@router.post("/estimates/{estimate_id:int}/esign/send")
async def send(request: Request, ctx: WebCtx, estimate_id: Id) -> Response:
    data = await form_data(request)
    env = env_for(request.app)
    try:
        row = await service.send_for_signature(ctx.db, env, ctx.user, estimate_id, data)
        if (
            row.embedded
            and data.get("mode") == "embedded"
            and row.status in (EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED)
        ):
            back = f"{env.settings.base_url}/esign/envelopes/{row.id}/back"
            return redirect(await service.signing_url(ctx.db, env, ctx.user, row.id, back))
    except (service.EsignError, ValidationFailed) as exc:
        text = " ".join(exc.errors.values()) if isinstance(exc, ValidationFailed) else str(exc)
        return _back(estimate_id, error=text)
    return _back(estimate_id, msg="esign_sent" if row.status != EnvelopeStatus.SENDING else "esign_sending")


@router.post("/esign/envelopes/{envelope_id:int}/sign-here")
async def sign_here(request: Request, ctx: WebCtx, envelope_id: Id) -> Response:
    env = env_for(request.app)
    row = await service.get_envelope(ctx.db, ctx.tenant_id, envelope_id)
    try:
        back = f"{env.settings.base_url}/esign/envelopes/{row.id}/back"
        return redirect(await service.signing_url(ctx.db, env, ctx.user, row.id, back))
    except service.EsignError as exc:
        return _back(row.estimate_id, error=str(exc))


@router.get("/esign/envelopes/{envelope_id:int}/back")
async def back_from_signing(request: Request, ctx: WebCtx, envelope_id: Id, event: str = "") -> Response:
    """Where the signing service sends the signer's browser back: ask it how the envelope stands now."""
    row = await service.get_envelope(ctx.db, ctx.tenant_id, envelope_id)
    with contextlib.suppress(ProviderError):  # if not now, the webhook and the poll will tell
        await service.refresh(ctx.db, env_for(request.app), row)
    # What happened is read from the envelope itself; the service's own word for it only when it says no more.
    if row.status == EnvelopeStatus.SIGNED:
        event = "signing_complete"
    elif row.status == EnvelopeStatus.DECLINED:
        event = "decline"
    else:
        event = event if event in MESSAGES else "cancel"
    return _back(row.estimate_id, msg=f"esign_{event}")


@router.post("/esign/envelopes/{envelope_id:int}/void")
async def void(request: Request, ctx: WebCtx, envelope_id: Id) -> Response:
    data = await form_data(request)
    row = await service.get_envelope(ctx.db, ctx.tenant_id, envelope_id)
    try:
        await service.void(ctx.db, env_for(request.app), ctx.user, envelope_id, data.get("reason", ""))
    except service.EsignError as exc:
        return _back(row.estimate_id, error=str(exc))
    return _back(row.estimate_id, msg="esign_voided")


async def _file(request: Request, ctx: WebCtx, envelope_id: int, which: str) -> Response:
    row = await service.get_envelope(ctx.db, ctx.tenant_id, envelope_id, files=True)
    if row.signed_pdf is None and row.status == EnvelopeStatus.SIGNED:
        with contextlib.suppress(ProviderError):  # signed, but the files did not come with the news: fetch them now
            await service.fetch_documents(ctx.db, env_for(request.app), row)
    data = row.signed_pdf if which == "signed" else row.certificate_pdf
    if not data:
        return Response("Nothing signed yet.", status_code=404, media_type="text/plain")
    name = f"Estimate {row.estimate_id} {'signed' if which == 'signed' else 'certificate'}.pdf"
    return Response(
        data, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/esign/envelopes/{envelope_id:int}/signed.pdf")
async def signed_pdf(request: Request, ctx: WebCtx, envelope_id: Id) -> Response:
    return await _file(request, ctx, envelope_id, "signed")


@router.get("/esign/envelopes/{envelope_id:int}/certificate.pdf")
async def certificate_pdf(request: Request, ctx: WebCtx, envelope_id: Id) -> Response:
    return await _file(request, ctx, envelope_id, "certificate")
