"""The Chrome UX Report's stand-in: records:queryRecord and records:queryHistoryRecord (chromeuxreport v1).

Each known origin has 25 weekly collection periods per form factor (a slow drift around its own figures), so the
history chart has a shape; an origin CrUX has no data for is Google's 404 (NOT_FOUND "chrome ux report data not
found"). `POST /_emulator/crux/sites` sets an origin's current p75s (a new collection period), which is how a test
turns a site poor. CLS p75 is a string with two decimals, as CrUX sends it; LCP and INP are integers (ms).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.hub.emulator.google import google_error

if TYPE_CHECKING:
    from fieldhub.providers.pagespeed.emulator import PageSpeedEmulator

FORM_FACTORS = ("PHONE", "DESKTOP", "TABLET")
PERIODS = 25
# CrUX's histogram bins are the Core Web Vitals thresholds.
BINS = {
    "largest_contentful_paint": (2500, 4000),
    "interaction_to_next_paint": (200, 500),
    "cumulative_layout_shift": (0.1, 0.25),
}
DEMO_ORIGIN = "https://riverbend.example"


def _seeded(origin: str, form: str) -> dict[str, float]:
    seed = int(hashlib.sha256(f"{origin}|{form}".encode()).hexdigest()[:8], 16)
    slower = 1.35 if form == "PHONE" else 1.0
    return {
        "largest_contentful_paint": round((1700 + seed % 700) * slower),
        "interaction_to_next_paint": round((110 + seed % 70) * slower),
        "cumulative_layout_shift": round(0.02 + (seed % 6) / 100, 2),
    }


def _series(origin: str, form: str, now: dict[str, float]) -> list[dict[str, float]]:
    """PERIODS weekly p75s ending at `now`: a gentle wave around it, deterministic per origin."""
    seed = int(hashlib.sha256(f"{origin}|{form}|h".encode()).hexdigest()[:8], 16)
    out = []
    for i in range(PERIODS):
        wobble = 1 + 0.08 * (((seed >> (i % 24)) % 9) - 4) / 4 * (PERIODS - 1 - i) / PERIODS
        out.append(
            {k: (round(v * wobble, 2) if k == "cumulative_layout_shift" else round(v * wobble)) for k, v in now.items()}
        )
    out[-1] = dict(now)
    return out


def _density(metric: str, p75: float) -> list[float]:
    good, poor = BINS[metric]
    if p75 <= good:
        first = 0.8
    elif p75 <= poor:
        first = 0.6
    else:
        first = 0.35
    second = round((1 - first) * 0.6, 4)
    return [first, second, round(1 - first - second, 4)]


def _bins(metric: str) -> list[dict[str, Any]]:
    good, poor = BINS[metric]
    if metric == "cumulative_layout_shift":
        return [
            {"start": "0.00", "end": f"{good:.2f}"},
            {"start": f"{good:.2f}", "end": f"{poor:.2f}"},
            {"start": f"{poor:.2f}"},
        ]
    return [{"start": 0, "end": good}, {"start": good, "end": poor}, {"start": poor}]


def _p75(metric: str, value: float) -> Any:
    return f"{value:.2f}" if metric == "cumulative_layout_shift" else int(value)


def _ymd(day: date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


class CruxData:
    def __init__(self, emu: PageSpeedEmulator) -> None:
        self.emu = emu
        # origin -> form factor -> list of weekly p75 dicts (oldest first); the last one is "now".
        self.sites: dict[str, dict[str, list[dict[str, float]]]] = {}
        self.add(DEMO_ORIGIN)

    def add(self, origin: str) -> None:
        self.sites[origin] = {form: _series(origin, form, _seeded(origin, form)) for form in FORM_FACTORS}

    def _last_day(self) -> date:
        today = date.fromtimestamp(self.emu.clock.now())
        return today - timedelta(days=2)  # CrUX's 28-day window ends a couple of days back

    def periods(self, count: int) -> list[dict[str, Any]]:
        last = self._last_day()
        ends = [last - timedelta(weeks=count - 1 - i) for i in range(count)]
        return [{"firstDate": _ymd(end - timedelta(days=27)), "lastDate": _ymd(end)} for end in ends]

    def _lookup(self, body: dict[str, Any]) -> tuple[str, str, list[dict[str, float]]] | JSONResponse:
        origin = body.get("origin") or body.get("url")
        if not isinstance(origin, str) or not origin:
            return google_error(400, "Invalid JSON payload: one of origin or url is required.")
        origin = origin.rstrip("/")
        form = body.get("formFactor") or "ALL_FORM_FACTORS"
        if form not in (*FORM_FACTORS, "ALL_FORM_FACTORS"):
            return google_error(400, f"Invalid value at 'form_factor' ({form})")
        site = self.sites.get(origin)
        if site is None:
            return google_error(404, "chrome ux report data not found")
        series = site["PHONE" if form == "ALL_FORM_FACTORS" else form]
        return origin, form, series

    def _wanted(self, body: dict[str, Any]) -> list[str]:
        asked = body.get("metrics") or list(BINS)
        return [m for m in asked if m in BINS]

    async def query_record(self, request: Request) -> JSONResponse:
        refused = self.emu.check_key(request)
        if refused is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        found = self._lookup(body)
        if isinstance(found, JSONResponse):
            return found
        origin, form, series = found
        now = series[-1]
        metrics = {
            m: {
                "histogram": [{**b, "density": d} for b, d in zip(_bins(m), _density(m, now[m]), strict=True)],
                "percentiles": {"p75": _p75(m, now[m])},
            }
            for m in self._wanted(body)
        }
        key = {"origin": origin} | ({"formFactor": form} if form != "ALL_FORM_FACTORS" else {})
        period = self.periods(1)[0]
        return JSONResponse({"record": {"key": key, "metrics": metrics, "collectionPeriod": period}})

    async def query_history(self, request: Request) -> JSONResponse:
        refused = self.emu.check_key(request)
        if refused is not None:
            return refused
        body = json.loads(await request.body() or b"{}")
        count = body.get("collectionPeriodCount", PERIODS)
        if not isinstance(count, int) or not 1 <= count <= 40:
            return google_error(400, "collectionPeriodCount must be between 1 and 40")
        found = self._lookup(body)
        if isinstance(found, JSONResponse):
            return found
        origin, form, series = found
        shown = series[-count:]
        metrics = {
            m: {
                "histogramTimeseries": [
                    {**b, "densities": [_density(m, week[m])[i] for week in shown]} for i, b in enumerate(_bins(m))
                ],
                "percentilesTimeseries": {"p75s": [_p75(m, week[m]) for week in shown]},
            }
            for m in self._wanted(body)
        }
        key = {"origin": origin} | ({"formFactor": form} if form != "ALL_FORM_FACTORS" else {})
        record = {"key": key, "metrics": metrics, "collectionPeriods": self.periods(len(shown))}
        return JSONResponse({"record": record})

    async def control_site(self, request: Request) -> dict[str, Any]:
        """Set an origin's p75s now (`lcp`, `inp` in ms, `cls`): a new collection period for the given form factors
        (default phone and desktop); an unknown origin starts with a history of its own."""
        body = json.loads(await request.body() or b"{}")
        origin = str(body["origin"]).rstrip("/")
        if origin not in self.sites:
            self.add(origin)
        forms = [body["formFactor"]] if body.get("formFactor") else ["PHONE", "DESKTOP"]
        names = {
            "lcp": "largest_contentful_paint",
            "inp": "interaction_to_next_paint",
            "cls": "cumulative_layout_shift",
        }
        for form in forms:
            series = self.sites[origin][form]
            latest = dict(series[-1])
            latest.update({names[k]: float(v) if k == "cls" else round(v) for k, v in body.items() if k in names})
            series.append(latest)
            del series[: -max(PERIODS, 40)]
        return {"origin": origin, "now": {f: self.sites[origin][f][-1] for f in forms}}

    async def control_forget(self, request: Request) -> dict[str, Any]:
        origin = str(json.loads(await request.body() or b"{}")["origin"]).rstrip("/")
        return {"removed": self.sites.pop(origin, None) is not None}


def install(emu: PageSpeedEmulator) -> CruxData:
    data = CruxData(emu)
    emu.app.add_api_route("/v1/records:queryRecord", data.query_record, methods=["POST"])
    emu.app.add_api_route("/v1/records:queryHistoryRecord", data.query_history, methods=["POST"])
    emu.app.add_api_route(f"{CONTROL_PREFIX}/crux/sites", data.control_site, methods=["POST"])
    emu.app.add_api_route(f"{CONTROL_PREFIX}/crux/forget", data.control_forget, methods=["POST"])
    return data
