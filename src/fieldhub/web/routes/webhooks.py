"""POST /webhooks/{provider}: signature first, then the durable inbox; processing runs after the reply.

The body's size is bounded while it streams in, by fieldhub.web.bodylimit (1 MB for webhooks: 413).
Refusals carry the project's error body ({"detail": ...}): 404 no such webhook, 401 bad signature, 400
malformed (inbox.read_event says why). Nothing is written for any of them.

A provider's webhooks module may define `unwrap(headers, body) -> bytes` (the event inside the body, such as
Dropbox Sign's JSON in a multipart field) and `REPLY`, the exact text its service needs back for an event taken.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from fieldhub.hub.oauth.env import OAuthEnv, env_for
from fieldhub.hub.webhooks import inbox
from fieldhub.log import get_logger

router = APIRouter()
log = get_logger(__name__)


async def _after(env: OAuthEnv, inbox_id: int) -> None:
    await inbox.process(env, inbox_id)
    # Whatever an earlier crash left behind goes now too: there is no other moment a webhook-only hub wakes.
    await inbox.sweep(env)


@router.post("/webhooks/{provider}")
async def receive(request: Request, provider: str, background: BackgroundTasks) -> Response:
    module = inbox.webhook_module(provider)
    if module is None:
        return JSONResponse({"detail": "No such webhook."}, status_code=404)
    body = await request.body()
    env = env_for(request.app)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if hasattr(module, "unwrap"):
        body = module.unwrap(headers, body)
    secret = await inbox.delivery_secret(env, provider, headers, body)
    if not secret or not module.verify(headers, body, secret):
        log.warning("webhook.signature.refused", provider=provider)
        return JSONResponse({"detail": "The signature is missing or wrong."}, status_code=401)
    try:
        text, event = inbox.read_event(module, body)
    except inbox.Malformed as e:
        log.warning("webhook.malformed", provider=provider, reason=str(e))
        return JSONResponse({"detail": f"Malformed event: {e}."}, status_code=400)
    async with request.app.state.sessionmaker() as session:
        row = await inbox.store(session, provider, event, text, headers)
        await session.commit()
    # A provider whose contract is an empty 200 (Xero: "no body, no cookies") gets one; one that needs exact words
    # (Dropbox Sign: "Hello API Event Received") gets them.
    if row is None:
        return _taken(module) or JSONResponse({"received": True, "duplicate": True})
    background.add_task(_after, env, row.id)
    return _taken(module) or JSONResponse({"received": True})


def _taken(module: object) -> Response | None:
    """The provider's own answer to an event taken, when its contract names one."""
    reply = getattr(module, "REPLY", None)
    if reply:
        return PlainTextResponse(reply)
    return Response(status_code=200) if getattr(module, "EMPTY_REPLY", False) else None
