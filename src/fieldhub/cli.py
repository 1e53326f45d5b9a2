"""The `fieldhub` command: serve | worker | demo | db upgrade | token create | check | ..."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console

from fieldhub import runtime
from fieldhub.settings import VAR, Settings, get_settings

app = typer.Typer(help="fieldhub: the Integrations Hub of a field-service business.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="Personal API tokens for /api/v1.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
keys_app = typer.Typer(help="Encryption keys for secrets at rest (FIELDHUB_ENCRYPTION_KEYS).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


def _logged_settings() -> Settings:
    """The settings, with logging set up from them (FIELDHUB_LOG_LEVEL, FIELDHUB_LOG_JSON): for the
    commands that do their work in this process (serve's app configures its own)."""
    from fieldhub import log as logging

    settings = get_settings()
    logging.configure(settings.log_level, settings.log_json)
    return settings


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database (FIELDHUB_DATABASE_URL) to the newest schema."""
    from fieldhub.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:
        VAR.mkdir(exist_ok=True)
    upgrade(settings.database_url, revision)
    console.print(f"[green]Database at {revision}.[/green]")


def _check_keys(settings: Settings) -> None:
    """Refuse to start with a missing or placeholder key ring; demo and test modes get a key file in var/."""
    from fieldhub.hub.vault import CredentialError, ensure_demo_key

    try:
        ensure_demo_key(settings)
    except CredentialError as exc:
        console.print(f"[red]{exc}[/red]  Generate one with: fieldhub keys generate")
        raise typer.Exit(2) from None


@keys_app.command("generate")
def keys_generate(kid: Annotated[str | None, typer.Option(help="Key id (default: k<date><random>)")] = None) -> None:
    """Print a new random AES-256 key as "kid:base64". Put it FIRST in FIELDHUB_ENCRYPTION_KEYS to rotate."""
    from fieldhub.hub.vault import generate_key

    print(generate_key(kid))


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per short transaction")] = 200,
) -> None:
    """Re-seal every stored secret with the FIRST key of FIELDHUB_ENCRYPTION_KEYS (online; safe to re-run)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fieldhub.db import make_engine, make_sessionmaker
    from fieldhub.hub.keyrotation import rotate_keys
    from fieldhub.hub.vault import ensure_demo_key

    settings = get_settings()
    _check_keys(settings)
    vault = ensure_demo_key(settings)

    async def go():
        engine = make_engine(settings.database_url)
        try:
            columns = (TextColumn(f"[bold]re-sealing with {vault.current_kid}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("rotate", total=None)
                return await rotate_keys(
                    make_sessionmaker(engine),
                    vault,
                    batch_size=batch_size,
                    progress=lambda r: bar.update(task, total=r.total, completed=r.done),
                )
        finally:
            await engine.dispose()

    report = runtime.run(go())
    for failure in report.failures:
        # Row and field only: never the value, and the reason names no key material.
        console.print(f"  [red]unreadable[/red] {failure.table} #{failure.row_id} {failure.field}: {failure.reason}")
    console.print(
        f"{report.rotated} rotated, {report.current} already current, {report.failed} failed"
        + (f", {report.changed_meanwhile} rewritten meanwhile" if report.changed_meanwhile else "")
        + f" (key {vault.current_kid})"
    )
    if report.failed:
        console.print("  Connections that could not be read are paused for Reconnect.")
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default FIELDHUB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default FIELDHUB_PORT)")] = None,
) -> None:
    """Serve the hub (pages, API, webhooks; embedded workers on SQLite)."""
    import uvicorn

    from fieldhub.main import create_app

    settings = get_settings()
    _check_keys(settings)
    if host:
        settings.host = host
    if port:
        settings.port = port
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


@app.command()
def demo(serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True) -> None:
    """Migrate, load the demo business (idempotent) and serve it with every provider's emulator."""
    from fieldhub.demo import load_demo
    from fieldhub.migrate import upgrade

    settings = get_settings()
    VAR.mkdir(exist_ok=True)
    _check_keys(settings)
    upgrade(settings.database_url)
    created = runtime.run(load_demo(settings))
    console.print("[green]Demo business ready.[/green]" + (" (already loaded)" if not created else ""))
    console.print(f"\n  Open [bold]{settings.base_url}/login[/bold]\n")
    console.print("  owner@example.com / admin@example.com / tech@example.com — password [bold]fieldhub-demo[/bold]")
    console.print("  (demo data only; the server listens on 127.0.0.1)\n")
    if serve_after:
        serve(None, None)


def _with_session(work):  # noqa: ANN001, ANN202 - an async function of one session, and what it returns
    """Run `work(session)` against FIELDHUB_DATABASE_URL and commit."""
    from fieldhub.db import make_engine, make_sessionmaker

    async def run():  # noqa: ANN202
        engine = make_engine(get_settings().database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return runtime.run(run())


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="The user the token acts as (with that user's role)")],
    name: Annotated[str, typer.Option(help="A label for the token")] = "cli",
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days until it expires")] = 90,
) -> None:
    """Create a personal API token and print it once (only its hash is stored). It expires after --days."""
    from sqlalchemy import select

    from fieldhub.core.accounts import service as accounts
    from fieldhub.core.accounts.models import User

    async def work(session):  # noqa: ANN001, ANN202
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        return None if user is None else await accounts.create_api_token(session, user, name, days=days)

    token = _with_session(work)
    if token is None:
        console.print(f"[red]No user with email {email}.[/red]")
        raise typer.Exit(1)
    print(token)


@token_app.command("list")
def token_list(
    email: Annotated[str, typer.Option(help="Only this user's tokens")] = "",
) -> None:
    """Every personal API token: whose, its label and prefix, when it expires and was last used. Never the value."""
    from rich.table import Table

    from fieldhub.core.accounts import service as accounts
    from fieldhub.core.accounts.models import User
    from fieldhub.db import utcnow

    async def work(session):  # noqa: ANN001, ANN202
        user_id = None
        if email:
            from sqlalchemy import select

            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None:
                return None
            user_id = user.id
        return [
            (row, row.user.email, row.user.tenant.name) for row in await accounts.api_tokens(session, user_id=user_id)
        ]

    rows = _with_session(work)
    if rows is None:
        console.print(f"[red]No user with email {email}.[/red]")
        raise typer.Exit(1)
    now = utcnow()
    table = Table(title="API tokens", title_justify="left")
    for column in ("Id", "User", "Business", "Name", "Token", "Created", "Expires", "Last used", "State"):
        table.add_column(column, justify="right" if column == "Id" else "left")
    colours = {"active": "green", "expired": "yellow", "revoked": "red"}
    when = "%Y-%m-%d %H:%M"
    for row, user_email, business in rows:
        state = accounts.token_state(row, now)
        table.add_row(
            str(row.id),
            user_email,
            business,
            row.name,
            f"{row.prefix}…",
            f"{row.created_at:{when}}",
            f"{row.expires_at:{when}}",
            f"{row.last_used_at:{when}}" if row.last_used_at else "never",
            f"[{colours[state]}]{state}[/{colours[state]}]",
        )
    console.print(table if rows else "No API tokens.")
    if rows:
        console.print("Times in UTC. Revoke one with: fieldhub token revoke <id>")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (fieldhub token list)")]) -> None:
    """Revoke a personal API token: its next request is refused with 401."""
    from fieldhub.core.accounts import service as accounts

    async def work(session):  # noqa: ANN001, ANN202
        row = await accounts.revoke_api_token(session, token_id)
        return None if row is None else (row.prefix, row.user.email)

    found = _with_session(work)
    if found is None:
        console.print(f"[red]No API token {token_id}.[/red]")
        raise typer.Exit(1)
    console.print(f"[green]Revoked[/green] {found[0]}… of {found[1]}.")


@app.command()
def check(
    require_emulators: Annotated[
        bool, typer.Option("--require-emulators", help="A provider without emulator/ is an error, not a warning")
    ] = False,
) -> None:
    """Check every provider folder and toml, and that shared code names no provider (hassfest-style)."""
    from fieldhub.hub.check import print_report, run

    report = run(require_emulators=require_emulators)
    print_report(report, console)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def emulate(
    key: Annotated[str, typer.Argument(help="Provider key: a folder under src/fieldhub/providers/")],
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1)")] = 9100,
) -> None:
    """Serve one provider's emulator on a port; point the hub at it with FIELDHUB_PROVIDERS__<KEY>__BASE_URL."""
    import uvicorn

    from fieldhub.hub import registry
    from fieldhub.hub.emulator.mount import build_emulator

    settings = get_settings()
    try:
        registry.get(key)
    except registry.UnknownProvider as e:
        raise typer.BadParameter(str(e)) from None
    emulator = build_emulator(settings, key)
    if emulator is None:
        raise typer.BadParameter(f"{key} has no emulator (providers/{key}/emulator/ with create_emulator)")
    console.print(f"[green]{key} emulator[/green] on http://127.0.0.1:{port}")
    console.print(f"  set FIELDHUB_PROVIDERS__{key.upper()}__BASE_URL=http://127.0.0.1:{port} for the hub to use it")
    uvicorn.run(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


# --- sync (hub/sync) ---
sync_app = typer.Typer(help="Sync records with connected providers.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("now")
def sync_now(
    connection: Annotated[int, typer.Option("--connection", help="Connection id")],
    entity: Annotated[str | None, typer.Option(help="Only this entity (customer, item, invoice...)")] = None,
) -> None:
    """Push a connection's pending records now, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fieldhub.hub.oauth.env import OAuthEnv
    from fieldhub.hub.sync.dispatch import request_sync
    from fieldhub.hub.sync.engine import LeaseHeld, sync_connection

    settings = _logged_settings()

    async def go() -> int:
        env = OAuthEnv.standalone(settings)
        try:
            async with env.sessionmaker() as session:
                await request_sync(session, connection, entity=entity, trigger="manual")
                await session.commit()
            columns = (TextColumn("[bold]sync"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("sync", total=None)
                run = await sync_connection(
                    env,
                    connection,
                    trigger="manual",
                    entity=entity,
                    progress=lambda p: bar.update(task, total=p.total or None, completed=p.done),
                )
            if run is None:
                console.print(
                    "Nothing to send: no record is waiting that this provider takes, or the connection is paused."
                )
                return 0
            console.print(
                f"{run.status}: {run.created} created, {run.updated} updated, {run.deleted} deleted, "
                f"{run.failed} failed in {run.duration_ms} ms"
            )
            for error in run.errors[:20]:
                console.print(f"  {error.get('entity', '')} {error.get('local_id', '')}: {error.get('reason', '')}")
            return 0 if run.status in ("success", "partial") else 1
        except LeaseHeld as e:
            console.print(f"[yellow]{e}[/yellow]")
            return 2
        finally:
            await env.engine.dispose()

    raise typer.Exit(runtime.run(go()))


memory_app = typer.Typer(help="Billing memory: sent invoices and estimates, embedded (issue 22).", no_args_is_help=True)
app.add_typer(memory_app, name="memory")


@memory_app.command("demo-year")
def memory_demo_year(
    tenant: Annotated[str, typer.Option("--tenant", help="The business, by slug or id")],
    invoices: Annotated[int, typer.Option(help="Invoices over the last 365 days")] = 240,
) -> None:
    """Write a year of priced billing history into a business (demo and trials): items with costs, customers
    (one at 14 Oak St), invoices sent and paid through the core services, a few estimates. Then run
    `fieldhub memory backfill` (or have the flag on while it is written) and ask from the dashboard."""
    from sqlalchemy import select

    from fieldhub.capabilities.memory.demo_year import seed_year
    from fieldhub.core.accounts.models import Tenant

    async def work(session):  # noqa: ANN001, ANN202
        found = await session.scalar(
            select(Tenant).where(Tenant.id == int(tenant) if tenant.isdigit() else Tenant.slug == tenant)
        )
        if found is None:
            return None
        return await seed_year(session, found.id, invoices_count=invoices)

    seeded = _with_session(work)
    if seeded is None:
        console.print(f"[red]No business {tenant!r}.[/red]")
        raise typer.Exit(2)
    console.print(f"Wrote {seeded.invoices} invoices ({seeded.sent} sent) and {seeded.estimates} estimates.")


@memory_app.command("backfill")
def memory_backfill(
    tenant: Annotated[str | None, typer.Option("--tenant", help="One business, by slug or id (default: all)")] = None,
    since: Annotated[str | None, typer.Option(help="Only records issued on or after this date (YYYY-MM-DD)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask: embed after printing the estimate")] = False,
    batch: Annotated[int, typer.Option(help="Records per embedding request and commit")] = 64,
) -> None:
    """Embed the history already there: counts records, tokens and cost first, asks, then embeds with a progress
    bar. Resumable: a run stopped at any point (even kill -9) is taken up by the next, no record embedded twice."""
    from datetime import date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
    from rich.table import Table
    from sqlalchemy import select

    from fieldhub.capabilities.memory import backfill
    from fieldhub.core.accounts.models import Tenant
    from fieldhub.hub.oauth.env import OAuthEnv

    settings = _logged_settings()
    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError:
        raise typer.BadParameter("--since takes a date like 2026-01-31") from None

    async def go() -> int:
        env = OAuthEnv.standalone(settings)
        try:
            async with env.sessionmaker() as session:
                stmt = select(Tenant.id, Tenant.slug, Tenant.name).order_by(Tenant.id)
                if tenant is not None:
                    stmt = stmt.where(Tenant.id == int(tenant) if tenant.isdigit() else Tenant.slug == tenant)
                tenants = (await session.execute(stmt)).all()
            if not tenants:
                console.print(f"[red]No business {tenant!r}.[/red]" if tenant else "No businesses yet.")
                return 2
            plans = [(t, await backfill.plan(env, t.id, since_date)) for t in tenants]
            table = Table(title="Billing memory backfill: the estimate")
            for column in ("Business", "Embedder", "To embed", "Already", "Tokens", "Cost", "Time"):
                table.add_column(column, justify="left" if column in ("Business", "Embedder") else "right")
            for t, p in plans:
                price = p.embedder.usd_per_million_tokens
                shown = f"${p.cost_usd:,.4f} (${price}/M tokens)" if price else "$0 (local model)"
                table.add_row(
                    t.slug, p.embedder.model, f"{len(p.records):,}", f"{p.already:,}", f"{p.tokens:,}", shown,
                    f"~{p.seconds:,.0f} s",
                )  # fmt: skip
            console.print(table)
            total = sum(len(p.records) for _, p in plans)
            total_cost = sum((p.cost_usd for _, p in plans), start=Decimal(0))
            seconds = sum(p.seconds for _, p in plans)
            console.print(
                f"{total:,} records to embed, about {sum(p.tokens for _, p in plans):,} tokens: "
                f"estimated cost ${total_cost:,.4f}, about {seconds:,.0f} s."
            )
            if not total:
                console.print("Nothing to embed: every record already has its embedding.")
                return 0
            if not yes and not typer.confirm("Embed them now?", default=False):
                console.print("Nothing was embedded.")
                return 1
            stored = 0
            columns = (
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            )  # fmt: skip
            with Progress(*columns, console=console) as bar:
                for t, p in plans:
                    if not p.records:
                        continue
                    task = bar.add_task(t.slug, total=len(p.records))

                    def step(n: int, task: TaskID = task) -> None:
                        bar.advance(task, n)

                    stored += await backfill.run(env, p, batch=batch, advance=step)
            console.print(f"Embedded {stored:,} records.")
            return 0
        finally:
            await env.engine.dispose()

    raise typer.Exit(runtime.run(go()))


@app.command()
def reconcile(
    connection: Annotated[int, typer.Option("--connection", help="Connection id (an accounting connection)")],
    month: Annotated[str, typer.Option(help="YYYY-MM (default: last month)")] = "",
    csv_path: Annotated[str, typer.Option("--csv", help="Also write the report as CSV to this path")] = "",
) -> None:
    """Compare a month's totals and records with the books; exit 0 within $1, 1 not, 2 on error."""
    from pathlib import Path
    from typing import Any

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fieldhub.capabilities.accounting import ledgers
    from fieldhub.capabilities.accounting import reconcile as module
    from fieldhub.hub.connections.models import Connection
    from fieldhub.hub.errors import ProviderError
    from fieldhub.hub.oauth.env import OAuthEnv

    settings = _logged_settings()

    async def go() -> Any:
        """The report, or an exit code when there is none."""
        env = OAuthEnv.standalone(settings)
        try:
            async with env.sessionmaker() as session:
                conn = await session.get(Connection, connection)
                if conn is None or not ledgers.is_ledger(conn.provider):
                    console.print(f"[red]No connection {connection} that can be reconciled.[/red]")
                    return 2
                try:
                    chosen = module.parse_month(month) if month else module.last_month()
                except ValueError as e:
                    console.print(f"[red]{e}[/red]")
                    return 2
                columns = (TextColumn(f"[bold]reading {conn.account_name or conn.provider}"), BarColumn())
                with Progress(*columns, MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
                    task = bar.add_task("read", total=None)

                    def progress(done: int, expected: int | None) -> None:
                        bar.update(task, total=max(expected or 0, done) or None, completed=done)

                    try:
                        return await module.reconcile(env, session, conn, chosen, progress=progress)
                    except ProviderError as e:
                        console.print(f"[red]{e.reason or e}[/red]  Nothing was changed.")
                        return 2
        finally:
            await env.engine.dispose()

    outcome = runtime.run(go())
    if isinstance(outcome, int):
        raise typer.Exit(outcome)
    report = outcome
    module.print_report(report, console)
    if csv_path:
        Path(csv_path).write_text(module.to_csv(report), encoding="utf-8")
        console.print(f"CSV written to {csv_path}")
    raise typer.Exit(0 if report.within else 1)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once by this process (connection runs, sweeps)")] = 4,
) -> None:
    """Scale-out worker (PostgreSQL): runs procrastinate's sync jobs; any number may run against one database."""
    from fieldhub.core import events
    from fieldhub.hub import registry
    from fieldhub.hub.emulator.mount import Endpoints
    from fieldhub.hub.oauth.env import OAuthEnv
    from fieldhub.hub.sync.ledger import on_domain_event
    from fieldhub.hub.sync.queue import run_worker

    settings = _logged_settings()
    if settings.is_sqlite:
        console.print("[red]`fieldhub worker` needs PostgreSQL.[/red] On SQLite, sync runs inside `fieldhub serve`.")
        raise typer.Exit(2)
    events.subscribe(on_domain_event)
    for listener in registry.capability_listeners():
        events.subscribe(listener)

    async def go() -> None:
        env = OAuthEnv.standalone(settings, Endpoints(settings))
        runtime.tune_gc_after_startup()
        try:
            await run_worker(env, concurrency=concurrency)
        finally:
            await env.engine.dispose()

    runtime.run(go())


@app.command()
def bench(
    name: Annotated[
        str, typer.Argument(help="A module in bench/: latency, backfill, overhead, memory, scale, login...")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON figures")] = False,
    option: Annotated[list[str] | None, typer.Option("--set", help="key=value passed to the benchmark")] = None,
    database_url: Annotated[str, typer.Option(help="Run against this database (default: a fresh SQLite file)")] = "",
    time_scale: Annotated[
        float | None, typer.Option(help="Emulated minutes per real minute: 60 makes a minute a second (backfill)")
    ] = None,
    provider: Annotated[
        str, typer.Option(help="The provider key of the ledger the crash and faults benchmarks sync to")
    ] = "",
) -> None:
    """Run a benchmark from bench/ and print its figures as one JSON object (docs/performance.md)."""
    import importlib.util
    import json

    from fieldhub.settings import ROOT

    path = ROOT / "bench" / f"{name}.py"
    if not path.is_file() or name.startswith("_"):
        available = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
        console.print(f"[red]No benchmark {name!r}.[/red] Available: {', '.join(available)}")
        raise typer.Exit(2)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args: dict[str, str] = dict(item.split("=", 1) for item in (option or []))
    if database_url:
        args["database_url"] = database_url
    if provider:
        args["provider"] = provider
    if time_scale is not None:
        if time_scale <= 0:
            raise typer.BadParameter("--time-scale must be positive")
        args["time_scale"] = str(time_scale)
    figures = module.run(args)
    if json_out:
        print(json.dumps(figures))
    else:
        console.print_json(json.dumps(figures))


if __name__ == "__main__":
    app()
