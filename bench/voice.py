"""voice: how long the phone assistant's tools take to answer while a caller waits, with 10,000 jobs on the schedule.

The hub app is built as `fieldhub serve` builds it (test mode: the Retell emulator mounted in-process) on a fresh
migrated database. One business with `technicians` technicians has `jobs` jobs spread over the coming year
(weekdays, working hours) and a blocked afternoon a week each; Voice AI is connected with the emulator's key and
its agent made as on connect. Then `calls` tool requests, signed as Retell signs them, are sent to
/voice/voice_ai/tools/<name> over ASGI (the whole HTTP stack and the route's database work, no socket), a mix of
a real call: check_availability for a day in the next weeks (morning, afternoon or any), book_job into the first
slot it offered, invoice_balance for a known caller, take_message. Latency is from just before the request to its
reply. Target: p99 ≤ 300 ms (Retell's caller is waiting).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.capabilities.voice import service as voice  # noqa: E402
from fieldhub.core.accounts import service as accounts  # noqa: E402
from fieldhub.core.accounts.models import Role  # noqa: E402
from fieldhub.core.customers.service import create_customer  # noqa: E402
from fieldhub.core.jobs.models import Job, TimeBlock, job_assignments  # noqa: E402
from fieldhub.hub.connections import service as connections  # noqa: E402
from fieldhub.hub.connections.service import AccountInfo, TokenSet  # noqa: E402
from fieldhub.hub.oauth.env import env_for  # noqa: E402
from fieldhub.providers.voice_ai.emulator import sign  # noqa: E402
from fieldhub.settings import Settings  # noqa: E402

KEY = "demo-voice_ai-api-key"
ZONE = ZoneInfo("America/Chicago")
CALLER = "+15125550147"


async def _business(env: Any, technicians: int, jobs: int, rng: random.Random) -> tuple[int, list[int]]:
    async with env.sessionmaker() as session:
        tenant = await accounts.create_tenant(session, name="Bench Voice Plumbing", slug="bench-voice")
        techs = []
        for n in range(technicians):
            user = await accounts.create_user(
                session,
                tenant=tenant,
                email=f"tech{n}@bench-voice.test",
                name=f"Tech{n} Bench",
                role=Role.TECHNICIAN,
                password="a-long-enough-password",
            )
            techs.append(user.id)
        customer = await create_customer(session, tenant.id, {"display_name": "Dana Caller", "phone": CALLER})
        await session.flush()
        today = datetime.now(ZONE).date()
        rows, links, blocks = [], [], []
        for n in range(jobs):
            day = today + timedelta(days=rng.randrange(1, 365))
            while day.weekday() > 4:
                day += timedelta(days=1)
            start = datetime(day.year, day.month, day.day, rng.randrange(8, 15), tzinfo=ZONE).astimezone(UTC)
            rows.append(
                {
                    "tenant_id": tenant.id,
                    "version": 1,
                    "customer_id": customer.id,
                    "title": f"Job {n}",
                    "description": "",
                    "address": "",
                    "scheduled_start": start,
                    "scheduled_end": start + timedelta(hours=2),
                    "status": "scheduled",
                    "notes": "",
                }
            )
        result = await session.execute(insert(Job).returning(Job.id), rows)
        for n, job_id in enumerate(result.scalars()):
            links.append({"job_id": job_id, "user_id": techs[n % len(techs)]})
        await session.execute(insert(job_assignments), links)
        for week in range(52):
            for tech in techs:
                day = today + timedelta(weeks=week, days=rng.randrange(0, 5))
                start = datetime(day.year, day.month, day.day, 13, tzinfo=ZONE).astimezone(UTC)
                blocks.append(
                    {
                        "tenant_id": tenant.id,
                        "version": 1,
                        "user_id": tech,
                        "starts_at": start,
                        "ends_at": start + timedelta(hours=3),
                        "reason": "Busy",
                        "source": "google_calendar",
                    }
                )
        await session.execute(insert(TimeBlock), blocks)
        await session.commit()
        return tenant.id, techs


async def _measure(db: str, technicians: int, jobs: int, calls: int, seed: int) -> dict[str, Any]:
    from fieldhub.main import create_app

    rng = random.Random(seed)
    settings = Settings(
        mode="test",
        database_url=db,
        encryption_keys=_qbo.new_key(),
        public_url="http://testserver",
        log_level="ERROR",
        embedded_workers=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        env = env_for(app)
        emulator = app.state.endpoints.emulators["voice_ai"]
        tenant_id, _ = await _business(env, technicians, jobs, rng)
        async with env.sessionmaker() as session:
            conn = await connections.save_connected(
                session,
                env.vault,
                tenant_id=tenant_id,
                provider="voice_ai",
                account=AccountInfo(id="api-key", name="Voice AI"),
                tokens=TokenSet(KEY),
            )
            await session.commit()
            info = await voice.setup(env, session, conn)
        figures: dict[str, list[float]] = {}
        booked = 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:

            async def tool(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
                call = {
                    "call_id": call_id,
                    "agent_id": info.agent_id,
                    "from_number": CALLER,
                    "to_number": info.phone_number,
                }
                body = json.dumps({"call": call, "name": name, "args": args}).encode()
                headers = {"content-type": "application/json", "x-retell-signature": sign(KEY, body)}
                t0 = time.perf_counter()
                reply = await client.post(f"/voice/voice_ai/tools/{name}", content=body, headers=headers)
                figures.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200, reply.text
                return reply.json()

            today = datetime.now(ZONE).date()
            for n in range(calls):
                call_id = f"call_bench_{n}"
                kind = n % 4
                if kind in (0, 1):
                    day = today + timedelta(days=rng.randrange(1, 60))
                    part = rng.choice(["morning", "afternoon", "any"])
                    found = await tool(
                        call_id,
                        "check_availability",
                        {
                            "service": "Drain cleaning",
                            "date_from": day.isoformat(),
                            "date_to": day.isoformat(),
                            "part_of_day": part,
                        },
                    )
                    if kind == 0 and found["slots"]:
                        result = await tool(
                            call_id,
                            "book_job",
                            {
                                "name": f"Caller {n}",
                                "address": "1 Main St",
                                "service": "Drain cleaning",
                                "slot": found["slots"][0]["start"],
                            },
                        )
                        booked += bool(result.get("booked"))
                elif kind == 2:
                    await tool(call_id, "invoice_balance", {})
                else:
                    await tool(call_id, "take_message", {"name": f"Caller {n}", "reason": "Call me back"})
        del emulator
    every = [v for values in figures.values() for v in values]

    def stats(values: list[float]) -> dict[str, Any]:
        ordered = sorted(values)
        return {
            "n": len(values),
            "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(_qbo.percentile(ordered, 0.99), 1),
            "max_ms": round(ordered[-1], 1),
        }

    return {"all": stats(every), "tools": {k: stats(v) for k, v in sorted(figures.items())}, "booked": booked}


def run(args: dict[str, Any]) -> dict[str, Any]:
    jobs = int(args.get("jobs", 10_000))
    technicians = int(args.get("technicians", 6))
    calls = int(args.get("calls", 400))
    with _qbo.scratch_database(args.get("database_url", ""), "voice") as db:
        measured = runtime.run(_measure(db, technicians, jobs, calls, int(args.get("seed", 7))))
    return {
        "benchmark": "voice",
        "backend": _qbo.backend(args.get("database_url", "") or "sqlite"),
        "jobs": jobs,
        "technicians": technicians,
        "tool_calls": measured["all"],
        "per_tool": measured["tools"],
        "booked": measured["booked"],
        "target_p99_ms": 300,
        "loadavg": _qbo.loadavg(),
    }
