"""Google Calendar's export: the calendar capability's adapter over Google's CalendarApi (calendar.py)."""

from __future__ import annotations

from typing import Any

import httpx

from fieldhub.capabilities.calendar.export import CalendarAdapter
from fieldhub.hub.errors import ProviderError, RetryLater
from fieldhub.hub.http import ProviderClient, parse_retry_after
from fieldhub.providers.google_calendar.calendar import open_calendar

EXPORTS = ("job",)
RATE_REASONS = (b"rateLimitExceeded", b"userRateLimitExceeded", b"quotaExceeded", b"usageLimits")


def classify(response: httpx.Response) -> ProviderError | None:
    """Google sends its rate limits as 403 usageLimits as often as 429: those are waits, not a refusal."""
    if response.status_code == 403 and any(r in response.content for r in RATE_REASONS):
        return RetryLater(
            "Google Calendar asked fieldhub to slow down",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            status=403,
        )
    return None


def create_adapter(connection: Any, client: ProviderClient, settings: Any) -> CalendarAdapter:
    return CalendarAdapter(connection, open_calendar(connection, client))
