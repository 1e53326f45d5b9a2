"""Outlook's export: the calendar capability's adapter over Graph's CalendarApi (calendar.py)."""

from __future__ import annotations

from typing import Any

from fieldhub.capabilities.calendar.export import CalendarAdapter
from fieldhub.hub.http import ProviderClient
from fieldhub.providers.outlook.calendar import open_calendar

EXPORTS = ("job",)


def create_adapter(connection: Any, client: ProviderClient, settings: Any) -> CalendarAdapter:
    return CalendarAdapter(connection, open_calendar(connection, client))
