"""What the sync benchmarks share: a scratch database, a QuickBooks emulator, a connected company, records, checks.

Nothing here is a shortcut around the product: the connection is made through the emulator's OAuth
consent and token endpoints, records are written through the core services (so the ledger is marked
by the same domain events as in production), and every count of duplicates or missing objects is
read back from the emulator's own store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import insert

from fieldhub import log
from fieldhub.core import events
from fieldhub.core.accounts import service as accounts
from fieldhub.core.customers.models import Customer
from fieldhub.core.invoices.models import Invoice, InvoiceLine, InvoiceStatus
from fieldhub.core.items.models import Item
from fieldhub.core.payments.models import Payment, PaymentMethod, PaymentStatus
from fieldhub.db import libpq_url, utcnow
from fieldhub.hub import registry
from fieldhub.hub.connections import service as connections
from fieldhub.hub.emulator import Account, EmulatorConfig
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.emulator.mount import Endpoints, emulator_config
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.ratelimit import RateLimiter
from fieldhub.hub.sync.ledger import on_domain_event
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation
from fieldhub.migrate import upgrade
from fieldhub.providers.quickbooks.emulator import US_REALM, QuickBooksEmulator
from fieldhub.providers.quickbooks.emulator.seed import US_MAPPING, us_company
from fieldhub.providers.quickbooks.emulator.store import Company
from fieldhub.runtime import tune_gc_after_startup
from fieldhub.settings import ProviderCredentials, Settings

HUB_URL = "http://bench.fieldhub.local"
# Access tokens outlive any benchmark, even on a scaled clock (a refresh is not what is measured).
TOKEN_LIFETIME = 30 * 24 * 3600
# Benchmarks log warnings only: stdout carries the one JSON object (and INFO lines would be measured too).
LOG_LEVEL = "WARNING"
ROOT = str(Path(__file__).resolve().parents[1])


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def backend(url: str) -> str:
    return url.split(":", 1)[0]


def pg_driver(url: str) -> str:
    """The project's PostgreSQL driver is psycopg (async): a postgresql+asyncpg URL is served by it unless installed."""
    if url.startswith("postgresql+asyncpg"):
        try:
            import asyncpg  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            return "postgresql+psycopg" + url[len("postgresql+asyncpg") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextlib.contextmanager
def scratch_database(url: str = "", name: str = "bench") -> Iterator[str]:
    """A fresh, migrated database: a SQLite file in a temp dir, or a new database on the given PostgreSQL server."""
    if not url or url.startswith("sqlite"):
        tmp = tempfile.mkdtemp(prefix=f"fh-{name}-")
        scratch = f"sqlite+aiosqlite:///{Path(tmp) / f'{name}.db'}"
        try:
            upgrade(scratch)
            yield scratch
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    import psycopg

    url = pg_driver(url)
    db = f"fh_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = libpq_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    scratch = f"{url.rsplit('/', 1)[0]}/{db}"
    try:
        upgrade(scratch)
        yield scratch
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def new_key() -> str:
    return "bench:" + base64.b64encode(os.urandom(32)).decode()


def make_settings(url: str, *, keys: str, emulator_url: str = "") -> Settings:
    log.configure(LOG_LEVEL)
    providers = {"quickbooks": ProviderCredentials(base_url=emulator_url)} if emulator_url else {}
    return Settings(
        mode="demo",
        database_url=url,
        encryption_keys=keys,
        public_url=HUB_URL,
        embedded_workers=0,
        log_level=LOG_LEVEL,
        providers=providers,
    )


def realm_id(n: int) -> str:
    return US_REALM if n == 0 else f"93414530{n:08d}"


def build_emulator(
    settings: Settings, *, time_scale: float = 1.0, realms: int = 1, latency: float = 0.0, seed: int | None = 7
) -> QuickBooksEmulator:
    """The QuickBooks emulator with the hub's demo credentials, `realms` US companies and optional fixed latency."""
    config: EmulatorConfig = emulator_config(settings, "quickbooks")
    config.time_scale = time_scale
    config.seed = seed
    config.access_lifetime = TOKEN_LIFETIME
    config.deliver_webhooks = False
    emulator = QuickBooksEmulator(config)
    for n in range(1, realms):
        company_seed = us_company()
        company_seed.realm_id = realm_id(n)
        company_seed.name = f"Bench Company {n}"
        emulator.companies[company_seed.realm_id] = Company(company_seed, emulator.clock.now)
        emulator.oauth.accounts.append(Account(company_seed.realm_id, company_seed.name, company_seed.email, {}))
    if latency:
        # Every company-API request waits this long (real seconds) before it is answered, as over a network.
        emulator.faults.append(FaultRule(kind="latency", path="^/v3/company/", delay=latency))
    return emulator


def in_process_env(settings: Settings, emulator: QuickBooksEmulator) -> OAuthEnv:
    endpoints = Endpoints(settings)
    endpoints.add("quickbooks", emulator)
    return OAuthEnv.standalone(settings, endpoints)


def subscribe_ledger() -> None:
    """What `fieldhub serve` and `fieldhub worker` do at start: core writes mark the sync ledger."""
    events.subscribe(on_domain_event)


async def create_tenant(env: OAuthEnv, slug: str) -> int:
    async with env.sessionmaker() as session:
        tenant = await accounts.create_tenant(session, name=f"Bench {slug}", slug=slug)
        await session.commit()
        return tenant.id


async def bare_connection(session: Any) -> tuple[int, int]:
    """A tenant and a QuickBooks connection row with no tokens: for benchmarks that only read the sync tables."""
    from fieldhub.hub.connections.models import Connection

    tenant_id = (await accounts.create_tenant(session, name="Bench", slug="bench")).id
    connection = Connection(tenant_id=tenant_id, provider="quickbooks", account_id="1", account_name="Bench")
    session.add(connection)
    await session.commit()
    return tenant_id, connection.id


async def connect(env: OAuthEnv, tenant_id: int, realm: str = US_REALM) -> int:
    """Connect QuickBooks through the emulator's consent and token endpoints, save the mapping, Auto-Sync on."""
    spec = registry.get("quickbooks")
    assert spec.auth is not None
    creds = env.settings.provider("quickbooks")
    redirect = env.settings.base_url + "/oauth/callback"
    authorize = env.endpoints.url("quickbooks", str(spec.auth.authorize_url))
    token_url = env.endpoints.url("quickbooks", str(spec.auth.token_url))
    async with env.endpoints.client("quickbooks", follow_redirects=False) as http:
        answer = await http.post(
            authorize,
            data={
                "client_id": creds.client_id,
                "redirect_uri": redirect,
                "response_type": "code",
                "scope": " ".join(spec.auth.scopes),
                "state": uuid.uuid4().hex,
                "decision": "approve",
                "account": realm,
            },
        )
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        token = await http.post(
            token_url,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(creds.client_id, creds.client_secret.get_secret_value()),
        )
        assert token.status_code == 200, token.text
    async with env.sessionmaker() as session:
        conn = await connections.save_connected(
            session,
            env.vault,
            tenant_id=tenant_id,
            provider="quickbooks",
            account=connections.AccountInfo(id=realm, name=f"Company {realm}", details={"country": "USA"}),
            tokens=connections.TokenSet.from_response(token.json()),
        )
        conn.settings = {**(conn.settings or {}), "account_mapping": dict(US_MAPPING)}
        conn.auto_sync = True  # as the guide leaves it (a new connection starts with it off)
        await session.commit()
        return conn.id


@dataclass
class Records:
    """What was written locally, to check the emulator against."""

    customers: dict[int, str] = field(default_factory=dict)  # id → display name
    items: dict[int, str] = field(default_factory=dict)  # id → name
    invoices: dict[int, Decimal] = field(default_factory=dict)  # id → total
    payments: dict[int, Decimal] = field(default_factory=dict)  # id → amount
    customer_count: int = 0
    item_count: int = 0
    invoice_count: int = 0
    payment_count: int = 0

    @property
    def total(self) -> int:
        return self.customer_count + self.item_count + self.invoice_count + self.payment_count

    def counts(self) -> dict[str, int]:
        return {
            "customers": self.customer_count,
            "items": self.item_count,
            "invoices": self.invoice_count,
            "payments": self.payment_count,
            "total": self.total,
        }


async def write_records(
    env: OAuthEnv,
    tenant_id: int,
    connection_id: int,
    *,
    invoices: int,
    customers: int,
    items: int,
    pay_every: int,
    keep: bool = True,
    chunk: int = 5_000,
) -> Records:
    """Customers, items, sent invoices (two lines each) and a payment on every `pay_every`-th invoice, bulk-loaded.

    Rows are written the way the core services leave them (totals computed the same way, a sent
    invoice's status and version, a payment's effect on its invoice) with their ledger rows pending,
    as the domain events would mark them — at tens of thousands of rows a second instead of a few
    hundred, so a 100,000-record backfill can be set up in a benchmark. The latency benchmark goes
    through the services themselves. `keep=False` keeps no per-record dicts (the memory benchmark
    would measure them).
    """
    out = Records()
    now = utcnow()
    today = now.date()
    ledger: list[dict[str, Any]] = []

    def pending(entity: str, local_id: int, version: int = 1) -> None:
        ledger.append(
            {
                "tenant_id": tenant_id,
                "connection_id": connection_id,
                "entity": entity,
                "local_id": local_id,
                "local_version": version,
                "synced_version": 0,
                "state": LedgerState.PENDING,
                "operation": Operation.UPSERT,
                "attempts": 0,
                "next_attempt_at": now,
                "error_code": "",
                "error_reason": "",
                "error_fix": "",
                "created_at": now,
                "updated_at": now,
            }
        )

    async with env.sessionmaker() as session:

        async def flush_ledger() -> None:
            if ledger:
                await session.execute(insert(LedgerRow), ledger)
                ledger.clear()

        stamp = {"tenant_id": tenant_id, "version": 1, "created_at": now, "updated_at": now}
        customer_ids = list(
            await session.scalars(
                insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
                [{**stamp, "display_name": f"Customer {n:06d}", "email": f"c{n}@x.example"} for n in range(customers)],
            )
        )
        item_ids = list(
            await session.scalars(
                insert(Item).returning(Item.id, sort_by_parameter_order=True),
                [{**stamp, "name": f"Service {n:04d}", "unit_price": PRICE} for n in range(items)],
            )
        )
        for n, cid in enumerate(customer_ids):
            pending("customer", cid)
            if keep:
                out.customers[cid] = f"Customer {n:06d}"
        for n, iid in enumerate(item_ids):
            pending("item", iid)
            if keep:
                out.items[iid] = f"Service {n:04d}"
        await flush_ledger()
        for first in range(0, invoices, chunk):
            numbers = range(first, min(first + chunk, invoices))
            rows, fees = [], []
            for n in numbers:
                fee = Decimal(f"{10 + n % 90}.25")
                total = PRICE * 2 + fee
                paid = PAYMENT if pay_every and n % pay_every == 0 else ZERO
                fees.append(fee)
                rows.append(
                    {
                        **stamp,
                        "version": 3 if paid else 2,  # created, sent (, paid)
                        "number": f"B{n + 1:07d}",
                        "customer_id": customer_ids[n % len(customer_ids)],
                        "status": InvoiceStatus.PARTIALLY_PAID if paid else InvoiceStatus.SENT,
                        "issue_date": today,
                        "discount_amount": ZERO,
                        "subtotal": total,
                        "discount_total": ZERO,
                        "tax_total": ZERO,
                        "total": total,
                        "amount_paid": paid,
                        "balance": total - paid,
                        "memo": "",
                        "notes": "",
                        "public_token": secrets.token_urlsafe(24),
                        "sent_at": now,
                    }
                )
            ids = list(await session.scalars(insert(Invoice).returning(Invoice.id, sort_by_parameter_order=True), rows))
            lines = []
            for n, invoice_id, fee in zip(numbers, ids, fees, strict=True):
                item_id = item_ids[n % len(item_ids)]
                lines.append(_line(invoice_id, 0, item_id, "Service", Decimal(2), PRICE))
                lines.append(_line(invoice_id, 1, None, "Call-out fee", Decimal(1), fee))
            await session.execute(insert(InvoiceLine), lines)
            paid_rows = []
            for invoice_id, row in zip(ids, rows, strict=True):
                pending("invoice", invoice_id, row["version"])
                if keep:
                    out.invoices[invoice_id] = row["total"]
                if row["amount_paid"]:
                    paid_rows.append(
                        {
                            **stamp,
                            "invoice_id": invoice_id,
                            "customer_id": row["customer_id"],
                            "amount": PAYMENT,
                            "received_on": today,
                            "method": PaymentMethod.CHECK,
                            "status": PaymentStatus.SUCCEEDED,
                            "reference": "",
                            "notes": "",
                        }
                    )
            if paid_rows:
                returning = insert(Payment).returning(Payment.id, sort_by_parameter_order=True)
                for pid in await session.scalars(returning, paid_rows):
                    pending("payment", pid)
                    if keep:
                        out.payments[pid] = PAYMENT
                    out.payment_count += 1
            out.invoice_count += len(ids)
            await flush_ledger()
            await session.commit()
        out.customer_count, out.item_count = len(customer_ids), len(item_ids)
    return out


PRICE = Decimal("85.00")
PAYMENT = Decimal("50.00")
ZERO = Decimal("0.00")


def _line(
    invoice_id: int, position: int, item_id: int | None, text: str, quantity: Decimal, price: Decimal
) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "position": position,
        "item_id": item_id,
        "description": text,
        "quantity": quantity,
        "unit_price": price,
        "discount_amount": ZERO,
        "amount": quantity * price,
        "taxable": False,
    }


MARK = re.compile(r"fieldhub (invoice|payment) #(\d+)")


def check_emulator(objects: dict[str, dict[str, dict[str, Any]]], records: Records) -> dict[str, int]:
    """Duplicates, missing and amount mismatches, read from the emulator's store (one company's objects)."""
    names = Counter(str(o.get("DisplayName", "")) for o in objects.get("Customer", {}).values())
    item_names = Counter(str(o.get("Name", "")) for o in objects.get("Item", {}).values())
    marked: dict[str, Counter[int]] = {"invoice": Counter(), "payment": Counter()}
    amounts: dict[tuple[str, int], Decimal] = {}
    for entity in ("Invoice", "Payment"):
        for obj in objects.get(entity, {}).values():
            m = MARK.search(str(obj.get("PrivateNote", "")))
            if m:
                marked[m.group(1)][int(m.group(2))] += 1
                amounts[(m.group(1), int(m.group(2)))] = Decimal(str(obj.get("TotalAmt")))
    duplicates = missing = mismatched = 0
    for counter, wanted in ((names, records.customers.values()), (item_names, records.items.values())):
        for name in wanted:
            duplicates += max(counter[name] - 1, 0)
            missing += counter[name] == 0
    for kind, wanted_amounts in (("invoice", records.invoices), ("payment", records.payments)):
        for local_id, amount in wanted_amounts.items():
            found = marked[kind][local_id]
            duplicates += max(found - 1, 0)
            missing += found == 0
            if found and amounts[(kind, local_id)] != amount:
                mismatched += 1
        # Objects marked with a local id we never wrote would be inventions.
        duplicates += sum(n for local_id, n in marked[kind].items() if local_id not in wanted_amounts)
    return {"duplicates": duplicates, "missing": missing, "amount_mismatches": mismatched}


def count_429(emulator: QuickBooksEmulator, since: int = 0) -> int:
    return sum(1 for r in emulator.requests if r.seq > since and r.status == 429)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# ----------------------------------------------------------------------------- an emulator in its own process

EMULATOR_SCRIPT = """
import sys, collections, uvicorn
sys.path.insert(0, {root!r})
from bench._qbo import build_emulator, make_settings
settings = make_settings("sqlite://", keys="x:" + "A" * 43 + "=")
emulator = build_emulator(settings, time_scale={scale}, realms={realms}, latency={latency})
emulator.requests = collections.deque(maxlen={log})
if {unlimited}:
    emulator.rate_rules.clear()
uvicorn.run(emulator, host="127.0.0.1", port={port}, log_level="warning", lifespan="off", access_log=False)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def emulator_process(
    *,
    time_scale: float = 1.0,
    realms: int = 1,
    latency: float = 0.0,
    log_size: int = 1000,
    unlimited: bool = False,
) -> AsyncIterator[tuple[str, int]]:
    """The QuickBooks emulator served by uvicorn in a child process; yields (base url, pid).

    `unlimited` drops its rate rules (QBO's limits); `latency` delays every company-API answer.
    """
    port = free_port()
    script = EMULATOR_SCRIPT.format(
        root=ROOT, scale=time_scale, realms=realms, latency=latency, port=port, log=log_size, unlimited=unlimited
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url + "/_emulator/oauth")).status_code < 500:
                        break
                if proc.returncode is not None:
                    raise RuntimeError("the emulator process exited at start")
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the emulator process did not start listening")
        yield url, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def remote_objects(url: str, realm: str = US_REALM) -> dict[str, dict[str, dict[str, Any]]]:
    async with httpx.AsyncClient(timeout=300) as http:
        state = (await http.get(url + "/_emulator/state")).json()
    objects: dict[str, dict[str, dict[str, Any]]] = state[realm]["objects"]
    return objects


async def emulator_requests(url: str) -> list[dict[str, Any]]:
    """The emulator process's request log (what it answered, and when), without bodies."""
    async with httpx.AsyncClient(timeout=300) as http:
        logged = (await http.get(url + "/_emulator/requests")).json()
    return [{k: v for k, v in entry.items() if k not in ("body", "response", "headers")} for entry in logged]


async def unsynced(env: OAuthEnv, connection_id: int | None = None) -> int:
    """Ledger rows not synced yet (of one connection, or all)."""
    from sqlalchemy import func, select

    stmt = select(func.count()).select_from(LedgerRow).where(LedgerRow.state != LedgerState.SYNCED)
    if connection_id is not None:
        stmt = stmt.where(LedgerRow.connection_id == connection_id)
    async with env.sessionmaker() as session:
        return int(await session.scalar(stmt) or 0)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from Linux /proc: for a child such as the emulator."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every core of this machine has spent busy so far (Linux /proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    """This process's resident set size now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


# ----------------------------------------------------------------------------- a pending backlog, unthrottled

SETUP_REQUESTS = 2  # the adapter's reads per run (tax codes and rates), before anything is pushed
NEVER_WAIT = 1e6  # a limiter clock scaled so far it never makes a request wait (its database work stays)


@dataclass
class Backlog:
    env: OAuthEnv
    connection_id: int
    records: Records
    url: str  # the emulator process's address
    limiter: RateLimiter  # the hub's shared limiter, in the path, on a clock that never waits


@contextlib.asynccontextmanager
async def backlog(
    db: str, slug: str, counts: dict[str, int], *, log_size: int = 1000, keep: bool = True
) -> AsyncIterator[Backlog]:
    """The set-up of overhead, memory and phases: a QuickBooks company in its own emulator process with
    QBO's rate rules off, connected through OAuth, and `counts` (invoices, customers, items, pay_every)
    of records pending in the ledger."""
    async with emulator_process(unlimited=True, log_size=log_size) as (url, _pid):
        env = OAuthEnv.standalone(make_settings(db, keys=new_key(), emulator_url=url))
        try:
            tenant_id = await create_tenant(env, slug)
            connection_id = await connect(env, tenant_id)
            records = await write_records(env, tenant_id, connection_id, **counts, keep=keep)
            tune_gc_after_startup()  # as `fieldhub worker` does once started; the loaded records are set-up too
            yield Backlog(env, connection_id, records, url, RateLimiter(env.sessionmaker, time_scale=NEVER_WAIT))
        finally:
            await env.engine.dispose()


def backlog_counts(args: dict[str, Any], **defaults: int) -> dict[str, int]:
    """invoices, customers, items and pay_every from --set options, with the benchmark's defaults."""
    return {key: int(args.get(key, default)) for key, default in defaults.items()}


def workload(args: dict[str, Any]) -> dict[str, int]:
    """The write_records counts (invoices, customers, items, pay_every) of a benchmark's parameters."""
    return {key: int(args[key]) for key in ("invoices", "customers", "items", "pay_every")}
