"""hub.sync.status: the figures the QuickBooks page and the health score read, from ledger and run rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.db import utcnow
from fieldhub.hub.connections.health import HealthInputs, Tier, score
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.connections.status import health_of, provider_connections
from fieldhub.hub.sync import status
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus, SyncRun, SyncRunDay
from fieldhub.providers.quickbooks.emulator import US_REALM
from tests.hub.oauth.conftest import consent


async def _conn(session, biz) -> Connection:
    conn = Connection(tenant_id=biz.tenant.id, provider="quickbooks", account_id="r1", account_name="Co", settings={})
    session.add(conn)
    await session.commit()
    return conn


def _run(conn, state, started, entity="invoice"):
    return SyncRun(
        tenant_id=conn.tenant_id,
        connection_id=conn.id,
        trigger="manual",
        direction="export",
        entity=entity,
        status=state,
        started_at=started,
        created=2,
        failed=int(state != "success"),
    )


async def test_counts_oldest_pending_failure_ratio_last_success(session, biz) -> None:
    conn = await _conn(session, biz)
    now = utcnow()
    rows = [
        LedgerRow(
            tenant_id=conn.tenant_id,
            connection_id=conn.id,
            entity="invoice",
            local_id=i,
            state=LedgerState.SYNCED,
            synced_at=now - timedelta(days=i),
        )
        for i in range(3)
    ]
    rows.append(
        LedgerRow(
            tenant_id=conn.tenant_id,
            connection_id=conn.id,
            entity="customer",
            local_id=1,
            state=LedgerState.PENDING,
            next_attempt_at=now - timedelta(hours=3),
        )
    )
    rows.append(
        LedgerRow(
            tenant_id=conn.tenant_id,
            connection_id=conn.id,
            entity="customer",
            local_id=2,
            state=LedgerState.PENDING,
            next_attempt_at=now - timedelta(minutes=5),
        )
    )
    rows.append(
        LedgerRow(
            tenant_id=conn.tenant_id, connection_id=conn.id, entity="payment", local_id=1, state=LedgerState.FAILED
        )
    )
    session.add_all(rows)
    session.add_all([_run(conn, RunStatus.SUCCESS, now - timedelta(hours=h)) for h in (5, 6, 7)])
    session.add(_run(conn, RunStatus.FAILED, now - timedelta(hours=1), "customer"))
    session.add(_run(conn, RunStatus.RUNNING, now))  # not finished: not counted
    await session.commit()

    s = await status.sync_status(session, conn.id, ["customer", "invoice", "payment", "item"], now=now)
    assert (s.pending, s.failed, s.synced) == (2, 1, 3)
    assert s.entity("invoice").synced == 3 and s.entity("item").counts == {}
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert s.synced_today == sum(1 for r in rows if r.state == LedgerState.SYNCED and r.synced_at >= midnight)
    assert s.recent_finished == 4 and s.recent_failed == 1 and s.failure_ratio == 0.25
    assert abs((s.last_success_at - (now - timedelta(hours=5))).total_seconds()) < 1
    assert abs((s.oldest_pending_at - (now - timedelta(hours=3))).total_seconds()) < 1
    assert s.entity("customer").last_run.status == RunStatus.FAILED
    assert sum(d.total for d in s.chart) == 4 and len(s.chart) == status.CHART_DAYS

    figures = await status.health_figures(session, conn.id)
    assert figures["failure_ratio"] == 0.25
    assert timedelta(hours=2, minutes=59) < figures["oldest_pending_age"] < timedelta(hours=3, minutes=1)
    # 25 % of runs failed → past the Warning step; a record waiting 3 hours alone would be Warning.
    assert health_of(conn, figures).tier is Tier.CRITICAL


async def test_health_is_excellent_without_runs_and_reacts_to_a_stuck_record(session, biz) -> None:
    conn = await _conn(session, biz)
    figures = await status.health_figures(session, conn.id)
    assert figures == {"failure_ratio": None, "oldest_pending_age": None, "last_success_age": None}
    session.add(
        LedgerRow(
            tenant_id=conn.tenant_id,
            connection_id=conn.id,
            entity="invoice",
            local_id=1,
            state=LedgerState.PENDING,
            next_attempt_at=utcnow() - timedelta(hours=8),
        )
    )
    await session.commit()
    figures = await status.health_figures(session, conn.id)
    assert health_of(conn, figures).tier is Tier.CRITICAL
    assert any("waited" in r for r in health_of(conn, figures).reasons)


async def test_history_keyset_pages_are_disjoint_and_ordered(session, biz, other_biz) -> None:
    conn = await _conn(session, biz)
    now = utcnow()
    # Ties on started_at: the id breaks them.
    session.add_all([_run(conn, RunStatus.SUCCESS, now - timedelta(seconds=i // 3)) for i in range(30)])
    await session.commit()
    seen, cursor = [], ""
    while True:
        page = await status.history(session, conn.tenant_id, conn.id, after=cursor, limit=7)
        seen += [r.id for r in page.runs]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == 30 == len(set(seen))
    # Another tenant asking for this connection sees nothing.
    assert (await status.history(session, other_biz.tenant.id, conn.id)).runs == []


async def test_the_chart_counts_each_run_on_its_utc_day(session, biz) -> None:
    from datetime import UTC, datetime

    conn = await _conn(session, biz)
    now = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)  # just past midnight: a run an hour ago is yesterday
    session.add_all(
        [
            _run(conn, RunStatus.SUCCESS, now - timedelta(minutes=10)),
            _run(conn, RunStatus.FAILED, now - timedelta(minutes=20)),
            _run(conn, RunStatus.SUCCESS, now - timedelta(hours=1)),
            _run(conn, RunStatus.PARTIAL, now - timedelta(days=3)),
            _run(conn, RunStatus.SUCCESS, now - timedelta(days=status.CHART_DAYS)),  # before the window
            _run(conn, RunStatus.RUNNING, now - timedelta(minutes=1)),  # not finished
        ]
    )
    await session.commit()
    chart = await status.runs_per_day(session, conn.id, now=now)
    assert len(chart) == status.CHART_DAYS and chart[-1].day.date() == now.date()
    counts = {c.day.date().isoformat(): (c.success, c.partial, c.failed) for c in chart if c.total}
    assert counts == {"2026-11-20": (1, 0, 1), "2026-11-19": (1, 0, 0), "2026-11-17": (0, 1, 0)}


async def test_the_chart_keeps_ended_days_counts_today_live_and_waits_for_a_running_day(session, biz) -> None:
    conn = await _conn(session, biz)
    now = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    session.add_all(
        [
            _run(conn, RunStatus.SUCCESS, now - 2 * day),
            _run(conn, RunStatus.SUCCESS, now - 2 * day + timedelta(hours=1)),
            _run(conn, RunStatus.FAILED, now - 2 * day),
            _run(conn, RunStatus.PARTIAL, now - day),
            _run(conn, RunStatus.RUNNING, now - day),  # yesterday is not over until this run is
            _run(conn, RunStatus.SUCCESS, now),
        ]
    )
    await session.commit()

    def totals(chart):
        return [(d.success, d.partial, d.failed) for d in chart[-3:]]

    first = await status.runs_per_day(session, conn.id, now=now)
    await session.commit()
    assert totals(first) == [(2, 0, 1), (0, 1, 0), (1, 0, 0)] and len(first) == status.CHART_DAYS
    rows = await session.scalars(select(SyncRunDay).where(SyncRunDay.connection_id == conn.id))
    kept = {row.day: row for row in rows}
    # Every ended day is kept (empty ones too), except yesterday with its run still running; today never is.
    assert len(kept) == status.CHART_DAYS - 2
    assert (now - day).date() not in kept and now.date() not in kept
    assert (kept[(now - 2 * day).date()].success, kept[(now - 2 * day).date()].failed) == (2, 1)

    # A kept day is read, not counted again (a run added to it behind the chart's back does not show)...
    session.add(_run(conn, RunStatus.SUCCESS, now - 2 * day))
    # ...while today and a day still running are counted live.
    session.add(_run(conn, RunStatus.FAILED, now))
    running = (await session.scalars(select(SyncRun).where(SyncRun.status == RunStatus.RUNNING))).one()
    running.status = RunStatus.SUCCESS
    await session.commit()
    again = await status.runs_per_day(session, conn.id, now=now)
    await session.commit()
    assert totals(again) == [(2, 0, 1), (1, 1, 0), (1, 0, 1)]
    assert (now - day).date() in {row.day for row in await session.scalars(select(SyncRunDay))}
    assert totals(await status.runs_per_day(session, conn.id, now=now)) == totals(again)


async def test_issue15_item2_quickbooks_health_recovers_after_reconnect_and_resync(session, biz, owner, qbo) -> None:  # noqa: ANN001
    """The runs that failed for the dead sign-in are history once it is replaced: Excellent again, not Warning."""

    async def health() -> Tier:
        found = await provider_connections(session, biz.tenant.id, "quickbooks")
        await session.commit()
        return found.views[0].health.tier

    await create_customer(session, biz.tenant.id, {"display_name": "Before Beth"})
    await session.commit()
    assert (await qbo.sync()).status == RunStatus.SUCCESS
    assert await health() is Tier.EXCELLENT

    await qbo.emulator.oauth.control_revoke("")
    await create_customer(session, biz.tenant.id, {"display_name": "During Dan"})
    await session.commit()
    assert (await qbo.sync()).status == RunStatus.FAILED  # tried: QuickBooks refused the sign-in
    for name in ("While Wes", "Paused Pat"):  # more changes while it waits for Reconnect: kept, nothing tried
        await create_customer(session, biz.tenant.id, {"display_name": name})
        await session.commit()
        assert await qbo.sync() is None
    assert await health() is Tier.CRITICAL
    runs = list(await session.scalars(select(SyncRun.status).order_by(SyncRun.id)))
    assert runs == [RunStatus.SUCCESS, RunStatus.FAILED]

    r, _ = await consent(owner, "quickbooks", account=US_REALM, reconnect=qbo.connection_id)
    assert r.status_code == 303
    run = await qbo.sync()
    assert (run.status, run.created) == (RunStatus.SUCCESS, 3)
    assert await health() is Tier.EXCELLENT
    page = (await owner.get("/settings/integrations/quickbooks")).text
    assert 'class="health-label">Excellent' in page


async def test_issue15_item2_a_quiet_connection_stays_excellent_until_its_runs_fail(session, biz) -> None:
    """No run is written when nothing needs sending, so a connection in step can go days without one: that is no
    fault. The last success's age counts only once runs fail after it."""
    conn = await _conn(session, biz)
    now = utcnow()
    conn.connected_at = now - timedelta(days=5)
    session.add(_run(conn, RunStatus.SUCCESS, now - timedelta(days=3)))
    await session.commit()
    figures = await status.health_figures(session, conn.id, since=conn.connected_at)
    assert figures["last_success_age"] is None
    assert score(HealthInputs(ConnectionStatus.CONNECTED, **figures)).tier is Tier.EXCELLENT
    session.add(_run(conn, RunStatus.FAILED, now - timedelta(hours=1)))
    await session.commit()
    figures = await status.health_figures(session, conn.id, since=conn.connected_at)
    assert figures["last_success_age"] > timedelta(days=2)
    graded = score(HealthInputs(ConnectionStatus.CONNECTED, **figures))
    assert graded.tier is Tier.CRITICAL and "The last successful sync was 3 days ago." in graded.reasons
