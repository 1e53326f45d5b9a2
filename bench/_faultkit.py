"""Shared by the fault benchmarks and their suite tests: a ledger's emulator on a real port, a connected and
mapped connection, a backfill's worth of records, and the exactly-once check.

QuickBooks unless `provider="xero"` (`fieldhub bench faults --provider xero`): the same records, faults and
audit against the Xero emulator, where each record is found by Xero's own key (contact and item names, the
marker in an invoice's or payment's Reference) and the tenant is named by the `xero-tenant-id` header.

Not a benchmark itself (the leading underscore keeps it out of `fieldhub bench`).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench._qbo import SETUP_REQUESTS
from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role
from fieldhub.core.customers.models import Customer
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.models import Invoice
from fieldhub.core.invoices.service import create_invoice, record_payment, send_invoice
from fieldhub.core.items.models import Item
from fieldhub.core.items.service import create_item
from fieldhub.core.payments.models import Payment
from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.hub.emulator.core import LoggedRequest
from fieldhub.hub.sync.clients import InProcessTransport
from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus, SyncRun
from fieldhub.providers.quickbooks.emulator import US_REALM, QuickBooksEmulator, create_emulator
from fieldhub.providers.quickbooks.emulator.seed import US_MAPPING
from fieldhub.settings import ProviderCredentials, Settings, demo_credentials

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"
# A fixed key ring for benchmark databases only (not a real secret).
BENCH_KEYS = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
REMOTE = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment"}
XERO_TENANT = "a3b4c5d6-0000-4000-8000-00000000c001"  # the Xero emulator's Riverbend organisation
XERO_MAPPING = {
    "service_revenue": "200",
    "product_revenue": "260",
    "sales_tax_payable": "820",
    "discounts": "260",
    "bank_deposit": "090",
    "payments_clearing": "092",
    "processing_fees": "404",
}
ACCOUNT = {"quickbooks": US_REALM, "xero": XERO_TENANT}  # the company or organisation each connects
MAPPINGS = {"quickbooks": US_MAPPING, "xero": XERO_MAPPING}


# ----------------------------------------------------------------------------- the emulator on a port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def emulator_on_port(
    *,
    time_scale: float = 1.0,
    hub_url: str = "http://testserver",
    provider: str = "quickbooks",
    deliver_webhooks: bool = False,
) -> Iterator[tuple[Any, str]]:
    """The provider's emulator served by uvicorn on 127.0.0.1 in a thread of this process.

    It outlives every process that talks to it, so its state survives their kill -9 and restarts. With
    `deliver_webhooks`, it posts its notifications to `hub_url` signed with the demo verifier token.
    """
    creds = demo_credentials(provider)
    factory = (
        create_emulator if provider == "quickbooks" else registry.import_module(provider, "emulator").create_emulator
    )
    emulator = factory(
        EmulatorConfig(
            hub_url=hub_url,
            client_id=creds.client_id,
            client_secret=creds.client_secret.get_secret_value(),
            webhook_secret=creds.webhook_secret.get_secret_value(),
            deliver_webhooks=deliver_webhooks,
            time_scale=time_scale,
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(emulator, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"the {provider} emulator did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield emulator, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def hub_settings(database_url: str, emulator_url: str, provider: str = "quickbooks") -> Settings:
    return Settings(
        mode="test",
        database_url=database_url,
        encryption_keys=SecretStr(BENCH_KEYS),
        public_url="http://testserver",
        log_level="ERROR",  # a benchmark's stdout is its JSON
        providers={provider: ProviderCredentials(base_url=emulator_url)},
    )


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `fieldhub` subprocess needs to reach the same database and emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDHUB_")}
    env |= {
        "FIELDHUB_MODE": settings.mode,
        "FIELDHUB_DATABASE_URL": settings.database_url,
        "FIELDHUB_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
        "FIELDHUB_PUBLIC_URL": settings.public_url,
        **{
            f"FIELDHUB_PROVIDERS__{key.upper()}__BASE_URL": settings.provider(key).base_url
            for key in ACCOUNT
            if settings.provider(key).base_url
        },
        "FIELDHUB_LOG_LEVEL": "WARNING",
        "FIELDHUB_EMBEDDED_WORKERS": "0",
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
    }
    return env | extra


def fieldhub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fieldhub.cli", *args]


# ----------------------------------------------------------------------------- a connected business


async def make_owner(session: AsyncSession, slug: str) -> tuple[int, str]:
    tenant = await accounts.create_tenant(session, name=f"Business {slug}", slug=slug)
    owner = await accounts.create_user(
        session, tenant=tenant, email=f"owner@{slug}.test", name="Owner", role=Role.OWNER, password=PASSWORD
    )
    await session.commit()
    return tenant.id, owner.email


async def connect_quickbooks(app: Any, email: str, account: str = US_REALM, provider: str = "quickbooks") -> int:
    """Log in as `email`, connect the ledger (QuickBooks unless `provider`) through its emulator's consent page,
    save the account mapping."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as hub:
        form = await hub.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, "no CSRF token on the login page"
        login = await hub.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)})
        assert login.status_code == 303, login.text
        start = await hub.get(f"/integrations/{provider}/connect", params={"mode": "page"})
        assert start.status_code == 302, start.text
        authorize = start.headers["location"]
        # An emulator on a port is reached over the network; one mounted in the hub through the hub.
        mounted = authorize.startswith(str(hub.base_url))
        async with httpx.AsyncClient(timeout=30) as network:
            browser = hub if mounted else network
            page = await browser.get(authorize)
            assert page.status_code == 200, page.text
            form = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
            choice = {"decision": "approve", "account": account}
            answer = await browser.post(authorize.split("?")[0], data=form | choice)
            assert answer.status_code == 302, answer.text
        back = await hub.get(answer.headers["location"])
        assert back.status_code in (200, 302, 303), back.text
    async with app.state.sessionmaker() as session:
        connection = await session.scalar(
            select(Connection).where(Connection.provider == provider, Connection.account_id == account)
        )
        assert connection is not None, f"{provider} did not connect"
        connection.settings = {**(connection.settings or {}), "account_mapping": dict(MAPPINGS[provider])}
        connection.auto_sync = True  # as the guide leaves it (a new connection starts with it off)
        await session.commit()
        return connection.id


async def make_records(session: AsyncSession, tenant_id: int, records: int, *, tag: str = "") -> int:
    """`records` records (at least 6): 3 to 5 items, then per customer one sent invoice and one payment on it.

    Amounts vary by row so a mix-up between records shows as a wrong amount. Returns the count made.
    """
    items = [
        await create_item(session, tenant_id, {"name": f"{tag}Part {i}", "unit_price": f"{10 + i}.25"})
        for i in range(3 + (max(records, 6) - 3) % 3)
    ]
    made = len(items)
    n = 0
    while made + 3 <= max(records, 6):
        customer = await create_customer(session, tenant_id, {"display_name": f"{tag}Customer {n:05d}"})
        invoice = await create_invoice(
            session,
            tenant_id,
            {
                "customer_id": customer.id,
                "lines": [
                    {"item_id": items[n % 3].id, "quantity": str(n % 4 + 1)},
                    {"description": "Labour", "unit_price": f"{n % 500}.{n % 100:02d}"},
                ],
            },
        )
        await send_invoice(session, tenant_id, invoice.id)
        await record_payment(session, tenant_id, invoice.id, {"amount": f"{1 + n % 7}.{n % 10}5"})
        made += 3
        n += 1
        if n % 200 == 0:
            await session.commit()
    await session.commit()
    return made


# ----------------------------------------------------------------------------- exactly once, to the cent


@dataclass
class Audit:
    records: int = 0
    duplicates: int = 0
    missing: int = 0
    amount_mismatches: int = 0
    unsynced: int = 0
    wrong_remote_ids: int = 0
    details: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, int]:
        return {
            "records": self.records,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "amount_mismatches": self.amount_mismatches,
            "unsynced": self.unsynced,
            "wrong_remote_ids": self.wrong_remote_ids,
        }

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.missing or self.amount_mismatches or self.unsynced or self.wrong_remote_ids)


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _xero_objects(emulator: Any, tenant: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The Xero organisation's objects in the audit's terms: id under "Id", the marker under "PrivateNote", the
    names and amounts under QuickBooks' names (a payment's Reference is its marker, then " · " and its own)."""
    books = emulator.organisations[tenant]
    out: dict[str, dict[str, dict[str, Any]]] = {"Customer": {}, "Item": {}, "Invoice": {}, "Payment": {}}
    for c in books.contacts.values():
        out["Customer"][c["ContactID"]] = {"Id": c["ContactID"], "DisplayName": c["Name"]}
    for i in books.items.values():
        price = (i.get("SalesDetails") or {}).get("UnitPrice", 0)
        out["Item"][i["ItemID"]] = {"Id": i["ItemID"], "Name": i.get("Name", ""), "UnitPrice": price}
    for v in books.invoices.values():
        out["Invoice"][v["InvoiceID"]] = {
            "Id": v["InvoiceID"],
            "PrivateNote": v.get("Reference", ""),
            "TotalAmt": v["Total"],
            "Balance": v["AmountDue"],
        }
    for p in books.payments.values():
        if p["Status"] != "DELETED" and "InvoiceID" in p:
            note = str(p.get("Reference", "")).split(" · ")[0]
            out["Payment"][p["PaymentID"]] = {"Id": p["PaymentID"], "PrivateNote": note, "TotalAmt": p["Amount"]}
    return out


async def audit(
    sessionmaker: async_sessionmaker[AsyncSession], emulator: QuickBooksEmulator, connection_id: int, realm: str
) -> Audit:
    """Compare every local record of the connection's tenant with what the emulator holds.

    One object per record (customers by DisplayName, items by Name, invoices and payments by the
    "fieldhub <entity> #<id>" note the adapter writes), the ledger pointing at exactly that object,
    and every amount equal to the cent: invoice total and balance, payment amount, item price.
    """
    objects = _xero_objects(emulator, realm) if emulator.key == "xero" else emulator.companies[realm].objects
    found = Audit()
    async with sessionmaker() as session:
        connection = await session.get(Connection, connection_id)
        assert connection is not None
        tenant = connection.tenant_id
        ledger = {
            (r.entity, r.local_id): r
            for r in await session.scalars(select(LedgerRow).where(LedgerRow.connection_id == connection_id))
        }
        found.unsynced = sum(1 for r in ledger.values() if r.state != LedgerState.SYNCED)
        found.details += [
            f"unsynced {r.entity} #{r.local_id}: {r.state} {r.error_code or ''} {r.error_reason or ''}".strip()
            for r in ledger.values()
            if r.state != LedgerState.SYNCED
        ][:5]
        local: dict[str, list[Any]] = {
            "customer": list(await session.scalars(select(Customer).where(Customer.tenant_id == tenant))),
            "item": list(await session.scalars(select(Item).where(Item.tenant_id == tenant))),
            "invoice": list(await session.scalars(select(Invoice).where(Invoice.tenant_id == tenant))),
            "payment": list(await session.scalars(select(Payment).where(Payment.tenant_id == tenant))),
        }
        found.records = sum(len(v) for v in local.values())
        if found.records != await _count_local(session, tenant):
            raise AssertionError("local record count changed during the audit")
    for entity, records in local.items():
        remote = list(dict(objects.get(REMOTE[entity], {})).values())
        if entity == "customer":
            by_key = Counter(o.get("DisplayName") for o in remote)
            keys = {r.id: r.display_name for r in records}
            index = {o.get("DisplayName"): o for o in remote}
        elif entity == "item":
            by_key = Counter(o.get("Name") for o in remote)
            keys = {r.id: r.name for r in records}
            index = {o.get("Name"): o for o in remote}
        else:
            by_key = Counter(o.get("PrivateNote") for o in remote)
            keys = {r.id: f"fieldhub {entity} #{r.id}" for r in records}
            index = {o.get("PrivateNote"): o for o in remote}
        for record in records:
            key = keys[record.id]
            copies = by_key[key]
            if copies == 0:
                found.missing += 1
                found.details.append(f"missing {entity} #{record.id}")
                continue
            if copies > 1:
                found.duplicates += copies - 1
                found.details.append(f"{copies} copies of {entity} #{record.id}")
            obj = index[key]
            row = ledger.get((entity, record.id))
            if row is None or row.remote_id != str(obj.get("Id")):
                found.wrong_remote_ids += 1
                found.details.append(f"ledger of {entity} #{record.id} points at {row and row.remote_id}")
            if not _amounts_match(entity, record, obj):
                found.amount_mismatches += 1
                found.details.append(f"amounts of {entity} #{record.id} differ: {_amounts(entity, obj)}")
    return found


async def _count_local(session: AsyncSession, tenant: int) -> int:
    total = 0
    for model in (Customer, Item, Invoice, Payment):
        count = await session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant))
        total += int(count or 0)
    return total


def _amounts(entity: str, obj: dict[str, Any]) -> dict[str, Any]:
    fields = {"invoice": ("TotalAmt", "Balance"), "payment": ("TotalAmt",), "item": ("UnitPrice",)}.get(entity, ())
    return {f: obj.get(f) for f in fields}


def _amounts_match(entity: str, record: Any, obj: dict[str, Any]) -> bool:
    try:
        if entity == "invoice":
            return _money(obj["TotalAmt"]) == record.total and _money(obj["Balance"]) == record.balance
        if entity == "payment":
            return _money(obj["TotalAmt"]) == record.amount
        if entity == "item":
            return _money(obj.get("UnitPrice", 0)) == record.unit_price
    except (KeyError, ArithmeticError, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------- Retry-After, from the log


def realm_of(path: str, headers: Any = None) -> str | None:
    """The company a request is metered on: QBO's realm in the path, Xero's tenant in its header."""
    match = re.search(r"/v3/company/([^/]+)/", path)
    if match:
        return match.group(1)
    if "/api.xro/2.0/" in path and headers is not None:
        return headers.get("xero-tenant-id") or None
    return None


@dataclass(frozen=True)
class Exchange:
    """One request as the client saw it, on the emulator's clock: when it left, and when its reply was back."""

    realm: str
    sent: float
    received: float
    status: int
    retry_after: str


def _sent_inside_a_wait(exchanges: list[Exchange], scale: float) -> list[tuple[int, int]]:
    """(n, m) pairs: exchange m went to the realm of exchange n, a 429, after n's reply and before its
    Retry-After (real seconds, from the reply; times on a clock scaled by `scale`) had run out."""
    found = []
    for n, throttled in enumerate(exchanges):
        if throttled.status != 429 or not throttled.retry_after:
            continue
        closes = throttled.received + float(throttled.retry_after) * scale
        found += [
            (n, m)
            for m, entry in enumerate(exchanges)
            if m != n and entry.realm == throttled.realm and throttled.received <= entry.sent < closes
        ]
    return found


def retry_after_violations(requests: list[LoggedRequest], scale: float = 1.0) -> list[tuple[int, int]]:
    """Requests to a realm that started before a 429's Retry-After (sent to that realm) had run out.

    Times in the log are the emulator's clock (scaled by `scale`); Retry-After is in real seconds.
    Only requests that started after the 429 was answered count: ones already in flight could not
    have known. Returns (seq of the 429, seq of the early request) pairs.

    This is the provider's view, and with several requests out at once it also counts one the client
    sent before the 429 reached it, which crossed the reply on its way (sent, then found the provider
    had just answered 429). What the client did once it knew is `ExchangeLog.violations`.
    """
    logged = [r for r in requests if realm_of(r.path, r.headers)]
    seen = [Exchange(realm_of(r.path, r.headers) or "", r.started, r.finished, r.status, r.retry_after) for r in logged]
    return [(logged[n].seq, logged[m].seq) for n, m in _sent_inside_a_wait(seen, scale)]


@dataclass
class CrashReport:
    kills: int = 0  # processes killed while still running
    runs_cut: int = 0  # kills that left their run "running" (a kill can land after the run finished, before exit)
    finished_before_kill: int = 0  # runs that ended before their kill came
    in_flight_at_kill: int = 0  # creates whose key was committed but not yet confirmed, summed over kills
    final_runs: int = 0
    exit_codes: list[int] = field(default_factory=list)


def _last_seq(emulator: Any) -> int:
    requests = emulator.requests
    return requests[-1].seq if requests else 0


async def _in_flight(sessionmaker: async_sessionmaker[AsyncSession], connection_id: int) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(LedgerRow)
            .where(LedgerRow.connection_id == connection_id, LedgerRow.idempotency_key.is_not(None))
        )
        return int(count or 0)


async def _last_run_running(sessionmaker: async_sessionmaker[AsyncSession], connection_id: int) -> bool:
    async with sessionmaker() as session:
        status = await session.scalar(
            select(SyncRun.status).where(SyncRun.connection_id == connection_id).order_by(SyncRun.id.desc()).limit(1)
        )
        return status == RunStatus.RUNNING


async def _unsynced(sessionmaker: async_sessionmaker[AsyncSession], connection_id: int) -> int:
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(LedgerRow)
            .where(LedgerRow.connection_id == connection_id, LedgerRow.state != LedgerState.SYNCED)
        )
        return int(count or 0)


async def kill_and_restart(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    emulator: Any,
    connection_id: int,
    *,
    kills: int,
    max_requests: int,
    rng: Any,
    log_path: Path,
    final_runs: int = 10,
    jitter: float = 0.05,
) -> CrashReport:
    """`fieldhub sync now --connection ID` in its own OS process, SIGKILLed `kills` times, then run to the end.

    Each kill comes once the emulator has seen a random 1..n requests from the process, then 0..jitter
    seconds more, so it lands anywhere in a run: between a key's commit and its request, mid-batch,
    before a reply's commit. n is at most `max_requests`, and at most twice the requests the work left
    needs (a batch request per 30 unsynced records, and a few reads) shared among the kills still to
    come, so all of them land before the backfill is done. Counted in requests, not seconds, so a
    faster engine or a slower machine still gets killed mid-run. Each restart is a fresh process that
    must resume from the ledger alone.
    """
    import asyncio
    import signal

    report = CrashReport()
    api = registry.get(emulator.key).api
    batch = (api.batch_size if api else None) or 1
    env = process_env(settings)
    command = fieldhub_command("sync", "now", "--connection", str(connection_id))
    with log_path.open("ab") as out:
        for done in range(kills):
            requests_left = await _unsynced(sessionmaker, connection_id) // batch + SETUP_REQUESTS
            span = max(1, min(max_requests, 2 * requests_left // (kills - done + 1)))
            target = _last_seq(emulator) + rng.randint(1, span)
            proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=out, stderr=out)
            deadline = time.monotonic() + 120
            # The emulator runs in another thread: its log is polled, there is no event to wait on.
            while _last_seq(emulator) < target and proc.returncode is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, jitter))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()  # reaped: its pid is gone, as after a real crash and restart
                report.kills += 1
                report.in_flight_at_kill += await _in_flight(sessionmaker, connection_id)
                report.runs_cut += await _last_run_running(sessionmaker, connection_id)
            else:
                report.finished_before_kill += 1
            report.exit_codes.append(proc.returncode if proc.returncode is not None else -1)
        for _ in range(final_runs):
            proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=out, stderr=out)
            code = await asyncio.wait_for(proc.wait(), timeout=1800)
            report.final_runs += 1
            report.exit_codes.append(code)
            if await _unsynced(sessionmaker, connection_id) == 0:
                break
    return report


# ----------------------------------------------------------------------------- more companies, concurrency


def add_companies(emulator: QuickBooksEmulator, count: int) -> list[str]:
    """`count` more US sandbox companies (own realm ids) a consent can pick, so each connection has its realm."""
    from dataclasses import replace

    from fieldhub.hub.emulator import Account
    from fieldhub.providers.quickbooks.emulator.seed import us_company
    from fieldhub.providers.quickbooks.emulator.store import Company

    realms = []
    for n in range(count):
        seed = replace(us_company(), realm_id=f"4620816365{n:06d}", name=f"Sandbox Company {n + 1}")
        company = Company(seed, emulator.clock.now)
        emulator.companies[seed.realm_id] = company
        emulator.webhooks.watch(company)
        emulator.oauth.accounts.append(Account(seed.realm_id, seed.name, seed.email, {"country": seed.country}))
        realms.append(seed.realm_id)
    return realms


def user_agent(entry: LoggedRequest) -> str:
    """Who sent a logged request: fieldhub names itself and its process in the User-Agent."""
    return next((v for k, v in entry.headers.items() if k.lower() == "user-agent"), "")


def max_in_flight(requests: list[LoggedRequest], by: Callable[[LoggedRequest], object] | None = None) -> dict[str, int]:
    """From the log: the most requests each realm had open at one moment (start and answer times). With
    `by`, the most senders with a request open (`by=user_agent`: processes): one process may have several
    batches out (the engine's BATCHES_IN_FLIGHT); two processes syncing one connection at once show as 2."""
    edges: dict[str, list[tuple[float, int, object]]] = {}
    for entry in requests:
        realm = realm_of(entry.path, entry.headers)
        if realm is None or not entry.finished:
            continue
        sender = entry.seq if by is None else by(entry)
        edges.setdefault(realm, []).extend([(entry.started, 1, sender), (entry.finished, -1, sender)])
    peaks = {}
    for realm, marks in edges.items():
        open_by: Counter[object] = Counter()
        senders = peak = 0
        # An answer at the very moment another starts is not an overlap: ends sort before starts.
        for _, step, sender in sorted(marks, key=lambda m: (m[0], m[1])):
            was_open = open_by[sender] > 0
            open_by[sender] += step
            senders += (open_by[sender] > 0) - was_open
            peak = max(peak, senders)
        peaks[realm] = peak
    return peaks


class ExchangeLog(httpx.AsyncBaseTransport):
    """The client's side of the log: wraps the transport a sync run's client sends through and notes, on
    the emulator's clock, when each request left the client and when its reply was in the client's hands.
    A Retry-After obeyed means nothing sent to the realm from the moment the client had the 429 until the
    wait was over; only the client's clock can tell a request sent after that from one already on its way.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Any) -> None:
        self.inner, self.clock = inner, clock
        self.exchanges: list[Exchange] = []

    @classmethod
    def around_quickbooks(cls, env: Any, emulator: Any) -> ExchangeLog:
        """Around the in-process emulator (QuickBooks', or another ledger's), wrapped as client_for wraps it, on
        the emulator's clock; pass it as the run's `transport` client option."""
        return cls(InProcessTransport(env.endpoints.transport(emulator.key)), emulator.clock.now)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = self.clock()
        status, retry_after = 0, ""
        try:
            response = await self.inner.handle_async_request(request)
            status, retry_after = response.status_code, response.headers.get("retry-after", "")
            return response
        finally:
            realm = realm_of(request.url.path, request.headers)
            if realm is not None:
                self.exchanges.append(Exchange(realm, sent, self.clock(), status, retry_after))

    async def aclose(self) -> None:
        return None  # shared by every run of a drain; the in-process app it wraps has nothing to close

    def violations(self, scale: float = 1.0) -> list[tuple[int, int]]:
        """Requests the client sent to a realm after a 429's reply was in its hands and before that reply's
        Retry-After (real seconds, from then) had run out: (index of the 429, index of the early one)."""
        return _sent_inside_a_wait(self.exchanges, scale)


# ----------------------------------------------------------------------------- injected faults


# Of all API requests: 10 % answered 503, 5 % 429 with Retry-After, 2 % held past the client's timeout,
# 1 % committed and then cut before the reply. Rules are tried in order, each with its own draw, so
# each rule's probability is its share of what the rules before it let through.
FAULT_SHARES = (("status", 0.10), ("rate_limit", 0.05), ("timeout", 0.02), ("drop_after_commit", 0.01))
API_PATHS = "/v3/company/|/api.xro/2.0/"  # faults hit the accounting API, not the token endpoint


def inject_faults(emulator: Any, *, seed: int, timeout_delay: float, retry_after: float = 1.0) -> None:
    """The issue's fault mix on the emulator's API; `retry_after` in real seconds (the header QBO sends)."""
    from fieldhub.hub.emulator.core import FaultRule

    emulator.random.seed(seed)
    left = 1.0
    for kind, share in FAULT_SHARES:
        emulator.faults.append(
            FaultRule(
                kind=kind,
                path=API_PATHS,
                probability=share / left,
                status=503,
                delay=timeout_delay,
                retry_after=retry_after * emulator.clock.scale,  # the emulator scales it back to real seconds
            )
        )
        left -= share


async def drain(env: Any, connection_id: int, *, client_options: dict[str, Any], rounds: int = 300) -> int:
    """Run the connection until nothing is pending, waiting out each back-off (never forcing rows due)."""
    import asyncio

    from fieldhub.db import utcnow
    from fieldhub.hub.sync.engine import sync_connection

    for run in range(1, rounds + 1):
        await sync_connection(env, connection_id, trigger="backfill", client_options=dict(client_options))
        async with env.sessionmaker() as session:
            pending = LedgerRow.connection_id == connection_id, LedgerRow.state == LedgerState.PENDING
            left = await session.scalar(select(func.count()).select_from(LedgerRow).where(*pending))
            if not left:
                return run
            due = await session.scalar(select(func.min(LedgerRow.next_attempt_at)).where(*pending))
        wait = (due - utcnow()).total_seconds() if due is not None else 0.0
        await asyncio.sleep(min(max(wait, 0.0), 30.0))
    raise AssertionError(f"still pending after {rounds} runs")


def fault_counts(requests: list[LoggedRequest]) -> dict[str, int]:
    counts = Counter(r.fault for r in requests if r.fault and realm_of(r.path, r.headers))
    return {kind: counts.get(kind, 0) for kind, _ in FAULT_SHARES}
