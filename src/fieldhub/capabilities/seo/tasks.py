"""The SEO capability's periodic work: each site's Core Web Vitals fetched once a day (CrUX updates daily)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fieldhub.capabilities.seo import service
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.dispatch import PeriodicTask

EVERY = timedelta(days=1)


async def fetch_due(env: OAuthEnv) -> int:
    from fieldhub.capabilities.seo.routes import vitals_providers

    done = 0
    async with env.sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(Connection).where(
                    Connection.provider.in_(vitals_providers()), Connection.status == ConnectionStatus.CONNECTED
                )
            )
        )
        for conn in rows:
            if service.origin_of(conn) and await service.due(session, conn, EVERY):
                await service.fetch_vitals(session, env, conn)
                await session.commit()
                done += 1
    return done


def periodic_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    return [PeriodicTask("seo.vitals", 3600, fetch_due)]
