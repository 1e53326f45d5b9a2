"""GET /metrics: Prometheus text format for provider traffic, token refreshes, sync latency and the ledger.

Counters and the latency histogram are this process's own. The pending and failed gauges are counted
from the ledger at scrape time, so any process (server or worker) answers with the whole hub's figures.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from fieldhub.hub import metrics
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState
from fieldhub.web.deps import DB

router = APIRouter()
LOOPBACK = {"127.0.0.1", "::1"}


def _allowed(request: Request) -> bool:
    """With FIELDHUB_METRICS_TOKEN set, the Bearer token and nothing else. Without it: in production mode
    nobody (a reverse proxy on the same host makes every client look like loopback), in demo and test mode
    loopback clients (the peer, or X-Forwarded-For from a proxy uvicorn trusts)."""
    settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value()
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return secrets.compare_digest(given.encode(), token.encode())
    if settings.mode == "production":
        return False
    return request.client is not None and request.client.host in LOOPBACK


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, db: DB) -> Response:
    if not _allowed(request):
        raise HTTPException(status_code=404)
    rows = await db.execute(
        select(Connection.provider, LedgerRow.connection_id, LedgerRow.state, func.count())
        .join(Connection, Connection.id == LedgerRow.connection_id)
        .where(LedgerRow.state.in_([LedgerState.PENDING, LedgerState.FAILED]))
        .group_by(Connection.provider, LedgerRow.connection_id, LedgerRow.state)
    )
    metrics.SYNC_PENDING.clear()
    metrics.SYNC_FAILED.clear()
    for provider, connection_id, state, count in rows:
        gauge = metrics.SYNC_PENDING if state == LedgerState.PENDING else metrics.SYNC_FAILED
        gauge.labels(provider, str(connection_id)).set(count)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
