"""Outlook's catch-up: the calendar capability's import (calendarView/delta; a reset starts over)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fieldhub.capabilities.calendar.inbound import Imported, sync_in
from fieldhub.hub.oauth.env import OAuthEnv

IMPORTS = ("time_block", "job")


async def poll(
    env: OAuthEnv, connection_id: int, *, trigger: str = "schedule", due_before: datetime | None = None, **options: Any
) -> Imported | None:
    return await sync_in(env, connection_id, trigger=trigger, due_before=due_before, **options)
