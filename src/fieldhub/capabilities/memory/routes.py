"""Billing memory's pages and API: the ask page (the dashboard's box sends its question here), the retry of failed
embeddings, and GET /api/v1/memory/ask?q= with the same answer as JSON.

Every answer is the business's own: the search, the records and the figures are read under its tenant id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from fieldhub.capabilities.memory import queue
from fieldhub.capabilities.memory.ask import Answer, ask
from fieldhub.capabilities.memory.embedders import LocalModelMissing, embedder_for
from fieldhub.hub.oauth.env import env_for
from fieldhub.web.kit import AdminCtx, ApiCtx, ApiRoute, Ctx, PageRoute, WebCtx, redirect, render

Question = Annotated[str, Query(max_length=500, description="The question, in plain words")]

pages = APIRouter(route_class=PageRoute)
api = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["memory"])


async def _answer(request: Request, ctx: Ctx, q: str) -> Answer | str:
    """The answer, or why there is none (the local model not installed)."""
    embedder = await embedder_for(env_for(request.app), ctx.tenant_id)
    try:
        return await ask(ctx.db, ctx.tenant_id, embedder, q)
    except LocalModelMissing as e:
        return str(e)


@pages.get("/memory")
async def memory_page(request: Request, ctx: WebCtx, q: Question = "") -> Response:
    answer = await _answer(request, ctx, q) if q.strip() else None
    data: dict[str, Any] = {
        "q": q,
        "answer": answer if isinstance(answer, Answer) else None,
        "problem": answer if isinstance(answer, str) else "",
        "status": await queue.status(ctx.db, ctx.tenant_id),
        "enabled": request.app.state.settings.rag_billing_embed_enabled,
    }
    return render(request, "memory/ask.html", data)


@pages.post("/memory/retry")
async def memory_retry(request: Request, ctx: AdminCtx) -> Response:
    await queue.retry_failed(ctx.db, ctx.tenant_id)
    return redirect("/memory")


@api.get("/memory/ask")
async def api_memory_ask(request: Request, ctx: ApiCtx, q: Question) -> Any:
    """Answer a question about the business's pricing history from its billing memory: the matching records with
    links, and figures computed from them (min/median/max, count, dates; markup from item cost), each naming the
    records it came from. `enough_history` is false, with no figures, when the history does not support one."""
    answer = await _answer(request, ctx, q)
    if isinstance(answer, str):
        return JSONResponse({"detail": answer}, status_code=503)
    return answer.as_json()


router = APIRouter()
router.include_router(pages)
router.include_router(api)
