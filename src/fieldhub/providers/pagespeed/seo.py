"""Core Web Vitals from the Chrome UX Report (capabilities/seo): the origin's p75 history for phone and desktop."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from fieldhub.capabilities.seo.service import NoData, Reading
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import NeedsReauth, RetryLater
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.oauth.tokens import get_access_token

KEY = "pagespeed"
CRUX = "https://chromeuxreport.googleapis.com/v1/records:queryHistoryRecord"
METRICS = {
    "largest_contentful_paint": "lcp_ms",
    "interaction_to_next_paint": "inp_ms",
    "cumulative_layout_shift": "cls",
}
PERIODS = 25


def _day(value: dict[str, int]) -> date:
    return date(value["year"], value["month"], value["day"])


def _value(field: str, raw: Any) -> int | Decimal | None:
    if raw is None:
        return None  # a period with too few visits for this metric
    return Decimal(str(raw)).quantize(Decimal("0.01")) if field == "cls" else int(raw)


async def fetch_vitals(env: OAuthEnv, conn: Connection, origin: str) -> list[Reading]:
    key = await get_access_token(env, conn.id)
    readings: list[Reading] = []
    async with env.endpoints.client(KEY, timeout=20.0) as http:
        for form in ("PHONE", "DESKTOP"):
            body = {"origin": origin, "formFactor": form, "metrics": list(METRICS), "collectionPeriodCount": PERIODS}
            try:
                reply = await http.post(env.endpoints.url(KEY, CRUX), params={"key": key}, json=body)
            except httpx.HTTPError as e:
                raise RetryLater(f"the Chrome UX Report could not be reached ({type(e).__name__})") from None
            if reply.status_code == 404:
                if form == "PHONE":
                    raise NoData(origin)
                continue  # phone data but not desktop: a mobile-heavy site
            if reply.status_code in (400, 401, 403) and "API_KEY_INVALID" in reply.text:
                raise NeedsReauth("Google refused the API key. Enter a new key to reconnect.", status=reply.status_code)
            if reply.status_code >= 400:
                raise RetryLater(f"the Chrome UX Report answered {reply.status_code}", status=reply.status_code)
            record = reply.json()["record"]
            ends = [_day(p["lastDate"]) for p in record["collectionPeriods"]]
            series = {
                field: record["metrics"].get(name, {}).get("percentilesTimeseries", {}).get("p75s", [None] * len(ends))
                for name, field in METRICS.items()
            }
            for i, end in enumerate(ends):
                values = {field: _value(field, series[field][i]) for field in series}
                readings.append(Reading(form, end, values["lcp_ms"], values["inp_ms"], values["cls"]))  # type: ignore[arg-type]
    return readings
