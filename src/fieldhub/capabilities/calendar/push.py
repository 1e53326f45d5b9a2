"""Push: the provider tells us a calendar changed and an incremental read follows within seconds.

Google watch channels (and, through the same seam, Graph subscriptions) are opened for every calendar a
connection reads, renewed before they expire by the `calendar.watch` periodic task, and answered at
/calendar/push/<provider>. A notice carries no data worth trusting: it only wakes `inbound.sync_in`, which reads
the changes with the stored cursor. Each channel's token is an HMAC of the connection and channel under the
provider's webhook secret, so nothing secret is stored and a forged notice is refused. Notices arriving while a
read runs coalesce into one more read after it. The Sync Interval's poll catches anything a lost notice missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fieldhub.capabilities.calendar import inbound, service
from fieldhub.capabilities.calendar.settings import CalendarSettings
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.webhooks.inbox import secret_for
from fieldhub.log import get_logger

log = get_logger("fieldhub.calendar.push")
RENEW_BEFORE = timedelta(days=1)
PUSH_PATH = "/calendar/push/{provider}"
STATE_KEY = "calendar_push"


def channel_token(env: OAuthEnv, provider: str, connection_id: int, channel_id: str) -> str:
    key = secret_for(env, provider).encode() or b"fieldhub"
    return hmac.new(key, f"{connection_id}:{channel_id}".encode(), hashlib.sha256).hexdigest()


def connection_of(channel_id: str) -> int | None:
    """Channel ids are "fh-<connection id>-<random>"."""
    parts = channel_id.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "fh" and parts[1].isdigit() else None


def calendars_read(settings: CalendarSettings) -> list[str]:
    found = [settings.calendar_id] if settings.calendar_id else []
    return found + sorted({c for c in settings.technician_calendars.values() if c and c not in found})


async def ensure_watching(env: OAuthEnv, connection_id: int) -> int:
    """Open (or renew) a channel on each calendar the connection reads; stop the ones no longer read.
    Returns how many channels were opened."""
    module: Any
    async with env.sessionmaker() as session:
        conn = await session.get(Connection, connection_id)
        if conn is None or conn.status != ConnectionStatus.CONNECTED:
            return 0
        module = registry.import_module(conn.provider, "calendar")
        if module is None or not hasattr(module, "open_calendar"):
            return 0
        settings = CalendarSettings.of(conn)
        wanted = calendars_read(settings) if (settings.imports or settings.two_way) else []
        channels: dict[str, dict[str, Any]] = dict((conn.settings or {}).get(STATE_KEY) or {})
        now = datetime.now(UTC)
        opened = 0
        address = env.settings.base_url + PUSH_PATH.format(provider=conn.provider)
        async with service.open_api(env, conn) as api:
            if not hasattr(api, "watch"):
                return 0
            for calendar_id in list(channels):
                if calendar_id not in wanted:
                    old = channels.pop(calendar_id)
                    await _stop(api, old)
            for calendar_id in wanted:
                current = channels.get(calendar_id)
                if current and datetime.fromtimestamp(int(current["expiration"]) / 1000, UTC) > now + RENEW_BEFORE:
                    continue
                channel_id = f"fh-{conn.id}-{secrets.token_hex(8)}"
                token = channel_token(env, conn.provider, conn.id, channel_id)
                made = await api.watch(calendar_id, channel_id, address, token)
                channels[calendar_id] = {
                    "id": channel_id,
                    "resourceId": str(made.get("resourceId", "")),
                    "expiration": str(made.get("expiration") or int((now + timedelta(days=7)).timestamp() * 1000)),
                }
                opened += 1
                if current:
                    await _stop(api, current)
        conn.settings = {**(conn.settings or {}), STATE_KEY: channels}
        await session.commit()
        return opened


async def _stop(api: Any, channel: dict[str, Any]) -> None:
    try:
        await api.stop(channel["id"], channel.get("resourceId", ""))
    except Exception:  # noqa: BLE001 - a channel we can't stop expires by itself
        log.info("calendar.push.stop_failed", channel=channel.get("id"))


async def watch_all(env: OAuthEnv) -> int:
    """The periodic task: every live calendar connection with a calendar picked keeps its channels open."""
    keys = [spec.key for spec in registry.providers_of("calendar")]
    async with env.sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Connection.id).where(
                    Connection.provider.in_(keys), Connection.status == ConnectionStatus.CONNECTED
                )
            )
        )
    opened = 0
    for cid in ids:
        try:
            opened += await ensure_watching(env, cid)
        except Exception:  # noqa: BLE001 - one connection's failure must not stop the rest
            log.warning("calendar.push.watch_failed", connection_id=cid, exc_info=True)
    return opened


# ------------------------------------------------------------------------------------------- notices

_running: dict[int, asyncio.Task[None]] = {}
_again: set[int] = set()


def wake(env: OAuthEnv, connection_id: int) -> None:
    """Read the connection's changes now; a notice during a read asks for one more read after it."""
    task = _running.get(connection_id)
    if task is not None and not task.done():
        _again.add(connection_id)
        return
    _running[connection_id] = asyncio.get_running_loop().create_task(_read(env, connection_id))


async def _read(env: OAuthEnv, connection_id: int) -> None:
    try:
        while True:
            _again.discard(connection_id)
            try:
                # An export run may hold the lease for a moment: wait for it rather than drop the notice.
                await inbound.sync_in(env, connection_id, trigger="webhook", wait=30.0)
            except Exception:  # noqa: BLE001 - the interval poll catches up
                log.warning("calendar.push.read_failed", connection_id=connection_id, exc_info=True)
            if connection_id not in _again:
                return
    finally:
        _running.pop(connection_id, None)


async def idle(within: float = 10.0) -> None:
    """Wait for the reads notices started (tests)."""
    async with asyncio.timeout(within):
        while _running:
            await asyncio.gather(*list(_running.values()), return_exceptions=True)
