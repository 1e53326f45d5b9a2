"""Core Web Vitals: fetch through the provider, store per period, grade against the thresholds, alert on poor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.seo.models import SeoFetch, VitalsReading
from fieldhub.db import utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.errors import ProviderError
from fieldhub.hub.notify import notify
from fieldhub.log import get_logger

log = get_logger(__name__)
WHAT = "core web vitals"
ALERT_KIND = "seo.vitals_poor"
FORM_FACTORS = ("PHONE", "DESKTOP")
# web.dev's thresholds at p75 (web-vitals' LCPThresholds, INPThresholds, CLSThresholds): good <= first, poor > second.
THRESHOLDS: dict[str, tuple[Decimal, Decimal]] = {
    "lcp_ms": (Decimal(2500), Decimal(4000)),
    "inp_ms": (Decimal(200), Decimal(500)),
    "cls": (Decimal("0.1"), Decimal("0.25")),
}
LABELS = {"lcp_ms": "LCP", "inp_ms": "INP", "cls": "CLS"}
CATEGORY_WORDS = {"good": "Good", "needs-improvement": "Needs improvement", "poor": "Poor"}


@dataclass(frozen=True)
class Reading:
    form_factor: str
    period_end: date
    lcp_ms: int | None
    inp_ms: int | None
    cls: Decimal | None


class NoData(Exception):
    """The provider has no field data for this origin (CrUX's 404): not a failure of the connection."""


def category(metric: str, value: int | Decimal | None) -> str:
    if value is None:
        return ""
    good, poor = THRESHOLDS[metric]
    value = Decimal(value)
    return "good" if value <= good else ("poor" if value > poor else "needs-improvement")


def shown(metric: str, value: int | Decimal | None) -> str:
    if value is None:
        return "—"
    if metric == "cls":
        return f"{Decimal(value):.2f}"
    return f"{Decimal(value) / 1000:.1f} s" if metric == "lcp_ms" else f"{value} ms"


def origin_of(conn: Connection) -> str:
    return str((conn.settings or {}).get("site", ""))


def normalise_origin(text: str) -> str:
    text = text.strip().rstrip("/")
    if text and "://" not in text:
        text = "https://" + text
    scheme, _, rest = text.partition("://")
    host = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or not host or " " in host or "." not in host:
        raise ValueError("Enter the website's address, like https://example.com.")
    return f"{scheme}://{host.lower()}"


async def set_site(session: AsyncSession, conn: Connection, text: str) -> str:
    origin = normalise_origin(text)
    conn.settings = {**(conn.settings or {}), "site": origin}
    await session.flush()
    return origin


async def latest(session: AsyncSession, conn: Connection) -> dict[str, VitalsReading]:
    """The newest reading per form factor for the connection's site."""
    found: dict[str, VitalsReading] = {}
    for form in FORM_FACTORS:
        row = await session.scalar(
            select(VitalsReading)
            .where(
                VitalsReading.connection_id == conn.id,
                VitalsReading.origin == origin_of(conn),
                VitalsReading.form_factor == form,
            )
            .order_by(VitalsReading.period_end.desc())
            .limit(1)
        )
        if row is not None:
            found[form] = row
    return found


async def history(session: AsyncSession, conn: Connection, form: str) -> list[VitalsReading]:
    return list(
        await session.scalars(
            select(VitalsReading)
            .where(
                VitalsReading.connection_id == conn.id,
                VitalsReading.origin == origin_of(conn),
                VitalsReading.form_factor == form,
            )
            .order_by(VitalsReading.period_end)
        )
    )


async def fetches(session: AsyncSession, conn: Connection, limit: int = 20) -> list[SeoFetch]:
    return list(
        await session.scalars(
            select(SeoFetch)
            .where(SeoFetch.connection_id == conn.id)
            .order_by(SeoFetch.fetched_at.desc(), SeoFetch.id.desc())
            .limit(limit)
        )
    )


def _poor(row: VitalsReading | None) -> set[str]:
    if row is None:
        return set()
    return {m for m in THRESHOLDS if category(m, getattr(row, m)) == "poor"}


async def fetch_vitals(session: AsyncSession, env: Any, conn: Connection) -> SeoFetch:
    """Fetch the site's field data now, keep each period once (a later fetch of the same period updates it), log the
    fetch, and alert when a metric that was not poor is poor now. Errors are logged on the fetch, not raised."""
    origin = origin_of(conn)
    # Graded now: the rows themselves are updated in place when a fetch brings the same period again.
    before = {form: _poor(row) for form, row in (await latest(session, conn)).items()}
    entry = SeoFetch(tenant_id=conn.tenant_id, connection_id=conn.id, what=WHAT, target=origin, fetched_at=utcnow())
    module = registry.import_module(conn.provider, "seo")
    try:
        if not origin:
            raise ValueError("no website set")
        assert module is not None
        readings: list[Reading] = await module.fetch_vitals(env, conn, origin)
    except NoData:
        entry.ok, entry.detail = True, f"{registry.get(conn.provider).name} has no field data for {origin} yet."
        readings = []
    except (ProviderError, ValueError) as e:
        entry.ok, entry.detail = False, f"Not fetched: {e}"
        readings = []
    for reading in readings:
        row = await session.scalar(
            select(VitalsReading).where(
                VitalsReading.connection_id == conn.id,
                VitalsReading.origin == origin,
                VitalsReading.form_factor == reading.form_factor,
                VitalsReading.period_end == reading.period_end,
            )
        )
        if row is None:
            row = VitalsReading(
                tenant_id=conn.tenant_id,
                connection_id=conn.id,
                origin=origin,
                form_factor=reading.form_factor,
                period_end=reading.period_end,
            )
            session.add(row)
        row.lcp_ms, row.inp_ms, row.cls, row.fetched_at = reading.lcp_ms, reading.inp_ms, reading.cls, entry.fetched_at
    if readings:
        periods = len({r.period_end for r in readings})
        entry.detail = (
            f"{periods} collection periods for phone and desktop, up to {max(r.period_end for r in readings)}."
        )
    session.add(entry)
    await session.flush()
    after = await latest(session, conn)
    for form, row in after.items():
        newly = _poor(row) - before.get(form, set())
        if newly:
            words = ", ".join(f"{LABELS[m]} {shown(m, getattr(row, m))}" for m in sorted(newly))
            await notify(
                session,
                conn.tenant_id,
                ALERT_KIND,
                f"Core Web Vitals turned poor on {form.lower()} for {origin}",
                f"{words} at the 75th percentile (poor is above "
                + ", ".join(f"{LABELS[m]} {shown(m, THRESHOLDS[m][1])}" for m in sorted(newly))
                + ").",
                link="/seo/vitals",
            )
    log.info("seo.vitals.fetched", tenant_id=conn.tenant_id, connection_id=conn.id, ok=entry.ok, readings=len(readings))
    return entry


async def due(session: AsyncSession, conn: Connection, every: timedelta) -> bool:
    last = await session.scalar(
        select(SeoFetch.fetched_at).where(SeoFetch.connection_id == conn.id).order_by(SeoFetch.fetched_at.desc())
    )
    return last is None or last <= utcnow() - every
