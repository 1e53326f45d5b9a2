"""The e-signature periodic task: voids asked for, sends whose reply was lost, and the poll behind the webhooks."""

from __future__ import annotations

from datetime import timedelta

from fieldhub.capabilities.esign import service
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.dispatch import PeriodicTask
from fieldhub.log import get_logger

log = get_logger(__name__)
EVERY = 10.0  # seconds: an edited estimate's old envelope is voided within this


async def run(env: OAuthEnv) -> int:
    """One round: each envelope in its own transaction, so one service's failure leaves the others alone."""
    poll_after = timedelta(seconds=env.settings.esign_poll_seconds)
    async with env.sessionmaker() as session:
        ids = await service.due(session, poll_after)
    for envelope_id in ids:
        async with env.sessionmaker() as session:
            try:
                await service.work_on(session, env, envelope_id)
                await session.commit()
            except ProviderError as exc:
                await session.rollback()
                log.warning("esign.poll.failed", envelope=envelope_id, kind=exc.kind, reason=exc.reason)
    return len(ids)


def periodic_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    return [PeriodicTask("esign.poll", EVERY, run)]
