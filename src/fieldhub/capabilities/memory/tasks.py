"""Billing memory's periodic work: embedding what status transitions queued (queue.py), every few seconds."""

from __future__ import annotations

from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.dispatch import PERIODIC_TICK, PeriodicTask

EMBED_TASK = "memory.embed"


async def _embed(env: OAuthEnv) -> int:
    from fieldhub.capabilities.memory.queue import embed_due

    if not env.settings.rag_billing_embed_enabled:
        return 0
    return await embed_due(env)


def periodic_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    return [PeriodicTask(EMBED_TASK, PERIODIC_TICK, _embed)]
