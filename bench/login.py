"""login: a signed-out GET /login's latency while 20 concurrent failing sign-ins hammer the hub, with real argon2.

The hub runs as `fieldhub serve` runs it (uvicorn, one process, production mode) in a child process on a
fresh migrated database, with argon2-cffi's default parameters: the test suite's cheap hasher is never
loaded there, and the owner's stored hash shows the parameters (`argon2`). The attackers run in a second
child process, so that this one does nothing but time GET /login, one request at a time, `probe_gap_ms`
apart. Three phases of the same hub:

- idle: no attack (the baseline);
- spray: `attackers` workers sign in continuously, each attempt with a new unknown email from a new client
  address (X-Forwarded-For, which uvicorn trusts from 127.0.0.1 as from a same-host proxy): no throttle
  rule binds, so every attempt costs a full argon2 verify. The worst case for the event loop;
- targeted: the same workers fail continuously on one real account, from rotating addresses: the
  account's rule binds. `checked_per_minute` counts, for each minute of the phase, the failures whose
  password was checked (400); every other attempt was refused (429) before any hash.

Each worker reads the login form's CSRF value once, as a script against the real form must.
Target: GET /login p99 ≤ 50 ms under the attack; failed attempts per account per minute capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _qbo  # noqa: E402
from fieldhub import runtime  # noqa: E402
from fieldhub.core.accounts import service as accounts  # noqa: E402
from fieldhub.core.accounts import throttle  # noqa: E402
from fieldhub.core.accounts.models import Role, User  # noqa: E402
from fieldhub.db import make_engine, make_sessionmaker  # noqa: E402

OWNER = "owner@login-bench.test"
PASSWORD = "a-long-enough-password-" + "x" * 8
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ATTACK = """
import sys
sys.path.insert(0, {root!r})
from bench.login import attack
attack({base!r}, {mode!r}, {email!r}, {workers}, {seconds})
"""


def _ms(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": round(_qbo.percentile(values, 0.50), 1),
        "p99": round(_qbo.percentile(values, 0.99), 1),
        "max": round(max(values, default=0.0), 1),
    }


# ----------------------------------------------------------------------------- the attackers' process


async def _worker(base: str, mode: str, email: str, index: int, until: float, seen: list[tuple[float, int]]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        found = CSRF.search((await client.get("/login")).text)
        token = found.group(1) if found else ""  # a hub from before the login form had one
        n = 0
        while time.monotonic() < until:
            n += 1
            # A new address every attempt (a spread-out attack), and in the spray a new email too.
            address = f"10.{index}.{n // 250 % 250}.{n % 250 + 1}"
            target = email if mode == "targeted" else f"nobody-{secrets.token_hex(6)}@spray.test"
            data = {"email": target, "password": f"wrong-{n}", "csrf_token": token}
            r = await client.post("/login", data=data, headers={"X-Forwarded-For": address})
            seen.append((time.monotonic(), r.status_code))


def attack(base: str, mode: str, email: str, workers: int, seconds: float) -> None:
    """Run in its own process: `workers` concurrent failing sign-ins for `seconds`; prints what they got."""

    async def go() -> dict[str, Any]:
        seen: list[tuple[float, int]] = []
        started = time.monotonic()
        await asyncio.gather(*(_worker(base, mode, email, i, started + seconds, seen) for i in range(workers)))
        statuses: dict[int, int] = {}
        for _, status in seen:
            statuses[status] = statuses.get(status, 0) + 1
        minutes = [0] * max(1, int(-(-seconds // 60)))
        for at, status in seen:
            if status == 400:
                minutes[min(len(minutes) - 1, int((at - started) // 60))] += 1
        return {"attempts": len(seen), "statuses": statuses, "checked_per_minute": minutes}

    print(json.dumps(asyncio.run(go())))


# ----------------------------------------------------------------------------- this process: the hub and the probe


async def _owner(db: str) -> str:
    engine = make_engine(db)
    async with make_sessionmaker(engine)() as session:
        tenant = await accounts.create_tenant(session, name="Login bench", slug="login-bench")
        await accounts.create_user(
            session, tenant=tenant, email=OWNER, name="Owner", role=Role.OWNER, password=PASSWORD
        )
        await session.commit()
        stored = await session.scalar(select(User.password_hash).where(User.email == OWNER))
    await engine.dispose()
    # "$argon2id$v=19$m=65536,t=3,p=4$…": the parameters every verify in the hub runs with.
    return str(stored).split("$")[3]


@contextlib.contextmanager
def _hub(db: str) -> Any:
    port = _qbo.free_port()
    env = {
        **os.environ,
        "FIELDHUB_MODE": "production",
        "FIELDHUB_DATABASE_URL": db,
        "FIELDHUB_ENCRYPTION_KEYS": _qbo.new_key(),
        "FIELDHUB_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "fieldhub.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            if server.poll() is not None:
                raise RuntimeError(f"the hub exited with {server.returncode}")
            time.sleep(0.1)
        else:
            raise RuntimeError("the hub did not start within 60 s")
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _probe(base: str, seconds: float, gap: float) -> list[float]:
    """GET /login, signed out, one at a time, for `seconds`: each one's latency in ms."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await client.get("/login")  # a returning visitor: the connection and the form's cookie are there
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            started = time.perf_counter()
            r = await client.get("/login")
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.status_code
            await asyncio.sleep(gap)
    return latencies


async def _phase(base: str, mode: str, params: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    seconds = float(params[f"{mode}_seconds"])
    gap = float(params["probe_gap_ms"]) / 1000
    if mode == "idle":
        return await _probe(base, seconds, gap), {}
    script = ATTACK.format(
        root=_qbo.ROOT, base=base, mode=mode, email=OWNER, workers=int(params["attackers"]), seconds=seconds
    )
    attackers = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=subprocess.PIPE)
    await asyncio.sleep(1.0)  # the attackers' process starts and reads its forms before the clock runs
    latencies = await _probe(base, seconds - 1.0, gap) if seconds > 1.0 else []
    out, _ = await attackers.communicate()
    if attackers.returncode != 0:
        raise RuntimeError(f"the attackers' process failed ({attackers.returncode})")
    got = json.loads(out.decode().strip().splitlines()[-1])
    got["attempts_per_second"] = round(got["attempts"] / seconds, 1)
    return latencies, got


async def _main(db: str, params: dict[str, Any]) -> dict[str, Any]:
    argon2 = await _owner(db)
    with _hub(db) as (base, _pid):
        idle, _ = await _phase(base, "idle", params)
        spray_ms, spray = await _phase(base, "spray", params)
        targeted_ms, targeted = await _phase(base, "targeted", params)
    attacked = spray_ms + targeted_ms
    per_minute = {r.seconds: r.limit for r in throttle.RULES if r.scope == "account"}
    return {
        "argon2": argon2,
        "hash_threads": accounts.HASH_THREADS,
        "get_login_ms_p50": _ms(attacked)["p50"],
        "get_login_ms_p99": _ms(attacked)["p99"],
        "get_login_ms": {"idle": _ms(idle), "spray": _ms(spray_ms), "targeted": _ms(targeted_ms)},
        "spray": spray,
        "targeted": targeted,
        "account_failures_checked_per_minute_max": max(targeted["checked_per_minute"], default=0),
        "account_limits": {"per_minute": per_minute.get(60), "per_hour": per_minute.get(3600)},
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    params = {
        "attackers": int(args.get("attackers", 20)),
        "idle_seconds": float(args.get("idle_seconds", 10)),
        "spray_seconds": float(args.get("spray_seconds", 30)),
        "targeted_seconds": float(args.get("targeted_seconds", 120)),
        "probe_gap_ms": float(args.get("probe_gap_ms", 20)),
    }
    load_start = _qbo.loadavg()
    with _qbo.scratch_database(args.get("database_url", ""), "login") as db:
        figures = runtime.run(_main(db, params))
    return {
        "benchmark": "login",
        "database": _qbo.backend(db),
        "parameters": params,
        **figures,
        "loadavg_start": load_start,
        "loadavg_end": _qbo.loadavg(),
    }
