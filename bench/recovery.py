"""recovery: kill -9 a `fieldhub serve` 20 times during an Auto-Sync backlog of 1,500 records; time the catch-up.

Issue 14 item 5. The hub runs as `fieldhub serve` runs it (its own OS process, uvicorn on a real port, the
embedded Dispatcher with one worker, Auto-Sync on, production mode pointed at the emulator). The QuickBooks
emulator serves on its own port in a thread of this process (QBO's real limits, time scale 1 unless
--time-scale) and delivers its webhooks to the hub as Intuit does: every create and update of fieldhub's own
comes back as a notification (bundled for a second, retried at 10 s, 20 s, 30 s... while the hub is down).

The backlog is loaded first (its ledger rows pending, as the domain events leave them); then the hub is
started and, 20 times, SIGKILLed once the emulator has seen a random 1..n of its requests (n as in `crash`:
at most `max_requests`, and at most twice the requests the work left needs shared among the kills to come),
and started again. After the last restart the clock runs until the emulator holds every local record; then
until the ledger says everything is synced and no run is left "running". Checked from the emulator's store:
one object per record, the ledger pointing at it, amounts to the cent (`crash`'s audit).

Figures: kills, records, catch_up_seconds (last restart's spawn → the emulator holds every record),
duplicates, missing, echo_gets (GETs of one object, `/customer/58`: what a webhook's notice costs when it is
read; every notification here is fieldhub's own echo), cdc_gets, webhooks delivered, runs_cut (kills that left
a run "running"), runs_left_running (after the catch-up: must be 0).

Options (--set key=value): records (1500), kills (20), max_requests (120), seed (7), deadline (600: seconds
to wait for the catch-up before giving up); --database-url for PostgreSQL (an empty database), else a fresh
SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench import _faultkit as kit  # noqa: E402
from bench._qbo import SETUP_REQUESTS  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.core.customers.models import Customer  # noqa: E402
from fieldhub.core.invoices.models import Invoice  # noqa: E402
from fieldhub.core.items.models import Item  # noqa: E402
from fieldhub.core.payments.models import Payment  # noqa: E402
from fieldhub.db import make_engine  # noqa: E402
from fieldhub.main import create_app  # noqa: E402
from fieldhub.models import metadata  # noqa: E402
from fieldhub.settings import Settings, demo_credentials  # noqa: E402

BATCH = 30
# A GET of one object by id: `/v3/company/<realm>/invoice/145` (queries, CDC and CompanyInfo are not echoes).
ONE_OBJECT = re.compile(r"/v3/company/[^/]+/(customer|invoice|payment|item)/[^/?]+$", re.IGNORECASE)


async def _schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


def hub_env(settings: Settings, port: int) -> dict[str, str]:
    """`fieldhub serve` as deployed: production mode, one embedded worker, QuickBooks at the emulator's port."""
    creds = demo_credentials("quickbooks")
    return kit.process_env(
        settings,
        FIELDHUB_MODE="production",
        FIELDHUB_EMBEDDED_WORKERS="1",
        FIELDHUB_PORT=str(port),
        FIELDHUB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        FIELDHUB_PROVIDERS__QUICKBOOKS__CLIENT_ID=creds.client_id,
        FIELDHUB_PROVIDERS__QUICKBOOKS__CLIENT_SECRET=creds.client_secret.get_secret_value(),
        FIELDHUB_PROVIDERS__QUICKBOOKS__WEBHOOK_SECRET=creds.webhook_secret.get_secret_value(),
        # The inbox's sweep (60 s by default) brings back a deferred notice sooner, so the run can count it.
        FIELDHUB_WEBHOOK_SWEEP_SECONDS="5",
    )


def _keys(emulator: Any, realm: str) -> set[tuple[str, str]]:
    """What the emulator holds, as (entity, key): customers by name, items by name, invoices and payments by note."""
    objects = emulator.companies[realm].objects
    for _ in range(20):  # the emulator's thread may be writing: copy again
        try:
            found = {("customer", str(o.get("DisplayName"))) for o in list(objects.get("Customer", {}).values())}
            found |= {("item", str(o.get("Name"))) for o in list(objects.get("Item", {}).values())}
            for entity in ("Invoice", "Payment"):
                found |= {(entity.lower(), str(o.get("PrivateNote"))) for o in list(objects.get(entity, {}).values())}
            return found
        except RuntimeError:
            time.sleep(0.001)
    raise RuntimeError("the emulator's store kept changing while read")


async def _expected(sessionmaker: Any, tenant_id: int) -> set[tuple[str, str]]:
    async with sessionmaker() as session:
        names = await session.scalars(select(Customer.display_name).where(Customer.tenant_id == tenant_id))
        wanted = {("customer", n) for n in names}
        wanted |= {("item", n) for n in await session.scalars(select(Item.name).where(Item.tenant_id == tenant_id))}
        for entity, model in (("invoice", Invoice), ("payment", Payment)):
            ids = await session.scalars(select(model.id).where(model.tenant_id == tenant_id))
            wanted |= {(entity, f"fieldhub {entity} #{i}") for i in ids}
        return wanted


async def _running_runs(sessionmaker: Any, connection_id: int) -> int:
    from fieldhub.hub.sync.models import RunStatus, SyncRun

    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(SyncRun)
            .where(SyncRun.connection_id == connection_id, SyncRun.status == RunStatus.RUNNING)
        )
        return int(count or 0)


async def _drain_inbox(sessionmaker: Any, *, within: float) -> dict[str, int]:
    """Wait until no webhook waits in the inbox (a deferred one comes back with the sweep); the states at the end."""
    from fieldhub.hub.webhooks.models import InboxState, WebhookInbox

    until = time.monotonic() + within
    while True:
        await asyncio.sleep(0.5)
        async with sessionmaker() as session:
            states = dict(
                (await session.execute(select(WebhookInbox.state, func.count()).group_by(WebhookInbox.state))).all()
            )
        waiting = states.get(InboxState.RECEIVED, 0)
        if not waiting or time.monotonic() > until:
            return {str(k): int(v) for k, v in states.items()}


async def kill_during_backlog(
    settings: Settings,
    sessionmaker: Any,
    emulator: Any,
    connection_id: int,
    tenant_id: int,
    *,
    port: int,
    kills: int,
    max_requests: int,
    rng: random.Random,
    log_path: Path,
    emulator_url: str,
    deadline: float = 600.0,
    inbox_wait: float = 90.0,
) -> dict[str, Any]:
    """Start `fieldhub serve`, SIGKILL it `kills` times during the backlog, start it once more and time the catch-up."""
    env = hub_env(settings, port)
    command = kit.fieldhub_command("serve", "--host", "127.0.0.1", "--port", str(port))
    expected = await _expected(sessionmaker, tenant_id)
    report: dict[str, Any] = {"kills": 0, "runs_cut": 0, "kills_after_finish": 0}
    with log_path.open("ab") as out:
        for done in range(kills):
            requests_left = await kit._unsynced(sessionmaker, connection_id) // BATCH + SETUP_REQUESTS
            span = max(1, min(max_requests, 2 * requests_left // (kills - done + 1)))
            target = kit._last_seq(emulator) + rng.randint(1, span)
            proc = await asyncio.create_subprocess_exec(*command, cwd=kit.ROOT, env=env, stdout=out, stderr=out)
            until = time.monotonic() + 120
            while kit._last_seq(emulator) < target and proc.returncode is None and time.monotonic() < until:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, 0.05))
            if proc.returncode is not None:
                raise RuntimeError(f"fieldhub serve exited by itself ({proc.returncode}); see {log_path}")
            finished = expected <= _keys(emulator, kit.US_REALM)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()  # reaped: its pid is gone, as after a real crash and a supervisor's restart
            report["kills"] += 1
            report["kills_after_finish"] += finished
            report["runs_cut"] += bool(await _running_runs(sessionmaker, connection_id))
        # The last restart: the clock starts as the process is spawned.
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*command, cwd=kit.ROOT, env=env, stdout=out, stderr=out)
        try:
            caught_up = None
            until = started + deadline
            while time.monotonic() < until:
                if caught_up is None and expected <= _keys(emulator, kit.US_REALM):
                    caught_up = time.monotonic() - started
                if caught_up is not None:
                    settled = await kit._unsynced(sessionmaker, connection_id) == 0
                    if settled and not await _running_runs(sessionmaker, connection_id):
                        break
                await asyncio.sleep(0.05)
            report["catch_up_seconds"] = round(caught_up, 2) if caught_up is not None else None
            report["settled_seconds"] = round(time.monotonic() - started, 2)
            report["runs_left_running"] = await _running_runs(sessionmaker, connection_id)
            # Every notification the hub missed while it was down is delivered now (Intuit would retry on its
            # schedule, up to hours apart) and the inbox is let drain, so each one's cost is counted.
            async with httpx.AsyncClient(timeout=60) as client:
                await client.post(emulator_url + "/_emulator/webhooks/flush")
            report["inbox"] = await _drain_inbox(sessionmaker, within=inbox_wait)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return report


def echo_counts(emulator: Any) -> dict[str, int]:
    """GETs of one object, split by why: the export's re-read after QuickBooks refused a stale SyncToken (5010:
    the request just before it, from the same process, was a write of that object refused as stale), or a
    webhook's notice read (every other one: no bookkeeper works in this company, so each is an echo)."""
    requests = [r for r in emulator.requests if "/v3/company/" in r.path]
    echo = stale = 0
    for n, r in enumerate(requests):
        match = ONE_OBJECT.search(r.path) if r.method == "GET" else None
        if match is None:
            continue
        object_id = r.path.rstrip("/").rsplit("/", 1)[-1]
        before = [
            p
            for p in requests[max(0, n - 8) : n]
            if kit.user_agent(p) == kit.user_agent(r) and p.method == "POST" and "Stale Object" in p.response
        ]
        if any(f'"Id":"{object_id}"' in p.body.replace(" ", "") for p in before):
            stale += 1
        else:
            echo += 1
    return {
        "echo_gets": echo,
        "stale_token_rereads": stale,
        "cdc_gets": sum(1 for r in requests if r.method == "GET" and r.path.rstrip("/").endswith("/cdc")),
        "api_requests": len(requests),
    }


async def _run(url: str, args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    records = int(args.get("records", 1500))
    kills = int(args.get("kills", 20))
    max_requests = int(args.get("max_requests", 120))
    rng = random.Random(int(args.get("seed", 7)))
    port = kit.free_port()
    await _schema(url)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    with kit.emulator_on_port(
        time_scale=float(args.get("time_scale", 1.0)), hub_url=f"http://127.0.0.1:{port}", deliver_webhooks=True
    ) as (emulator, emulator_url):
        settings = kit.hub_settings(url, emulator_url)
        # The connect below goes through an in-process app at http://testserver; the served hub is on `port`.
        emulator.oauth.rules.redirect_uris.append(settings.base_url + "/oauth/callback")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with app.state.sessionmaker() as session:
                tenant_id, email = await kit.make_owner(session, "recovery")
            connection_id = await kit.connect_quickbooks(app, email)
            async with app.state.sessionmaker() as session:
                made = await kit.make_records(session, tenant_id, records)
            started = time.perf_counter()
            report = await kill_during_backlog(
                settings,
                app.state.sessionmaker,
                emulator,
                connection_id,
                tenant_id,
                port=port,
                kills=kills,
                max_requests=max_requests,
                rng=rng,
                log_path=workdir / "serve.log",
                emulator_url=emulator_url,
                deadline=float(args.get("deadline", 600)),
            )
            seconds = time.perf_counter() - started
            found = await kit.audit(app.state.sessionmaker, emulator, connection_id, kit.US_REALM)
            await app.state.engine.dispose()
        deliveries = list(emulator.webhooks.deliveries)
    figures = found.figures()
    return {
        "benchmark": "recovery",
        "database": url.split(":", 1)[0],
        "parameters": {"records": records, "kills": kills, "max_requests": max_requests, "auto_sync": True},
        "hub": "fieldhub serve (production mode, one embedded worker), SIGKILLed and started again",
        "kills": report["kills"],
        "records": figures["records"],
        "records_made": made,
        "catch_up_seconds": report["catch_up_seconds"],
        "target_seconds": 30,
        "settled_seconds": report["settled_seconds"],
        "duplicates": figures["duplicates"],
        "missing": figures["missing"],
        "amount_mismatches": figures["amount_mismatches"],
        "unsynced": figures["unsynced"],
        "wrong_remote_ids": figures["wrong_remote_ids"],
        **echo_counts(emulator),
        "webhooks_delivered": sum(1 for d in deliveries if d.status == "delivered"),
        "webhook_replies": dict(Counter(r for d in deliveries for r in d.responses)),
        "inbox": report["inbox"],
        "webhook_notices": sum(len(d.events) for d in deliveries),
        "runs_cut": report["runs_cut"],
        "kills_after_finish": report["kills_after_finish"],
        "runs_left_running": report["runs_left_running"],
        "exactly_once": found.clean and figures["records"] == made,
        "seconds": round(seconds, 1),
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "problems": found.details[:10],
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.get("database_url") or f"sqlite+aiosqlite:///{Path(tmp) / 'recovery.db'}"
        return runtime.run(_run(url, args, Path(tmp)))
