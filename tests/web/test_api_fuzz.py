"""schemathesis over every operation of /api/openapi.json, in-process (ASGI) and signed in: no 5xx, and every
answer is one the document describes (status code, content type, body schema, `Allow` on a 405).

The run is the CLI's (`schemathesis run`): examples, then the coverage phase (boundary and type-confusion
values for each input: the one that found 2**63 ids, `null` on PATCH and 40-digit amounts, issue 14 item 6),
then a few fuzzed cases per operation, positive and negative. A fixed seed and derandomized Hypothesis make
it the same run every time; the first failure of each kind is reported with a curl line to reproduce it.
FIELDHUB_FUZZ_EXAMPLES raises the fuzzed cases per operation for a deeper run by hand.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import psycopg
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from tests.conftest import PASSWORD, TEST_KEYS

from fieldhub.capabilities.memory import embedders
from fieldhub.core.accounts import service as accounts
from fieldhub.core.accounts.models import Role
from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates.service import create_estimate
from fieldhub.core.invoices.service import create_invoice, record_payment
from fieldhub.core.items.service import create_item, create_tax_rate
from fieldhub.db import libpq_url, make_engine, make_sessionmaker
from fieldhub.main import create_app
from fieldhub.settings import Settings

EXAMPLES = int(os.environ.get("FIELDHUB_FUZZ_EXAMPLES", "5"))
SEED = 14
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)


async def _signed_in_business(db_url: str) -> tuple[str, str, str]:
    """An owner with an API token and a browser session, and a few records for the ids to find."""
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        tenant = await accounts.create_tenant(s, name="Fuzzed", slug="fuzzed")
        owner = await accounts.create_user(
            s, tenant=tenant, email="owner@fuzzed.test", name="Owner", role=Role.OWNER, password=PASSWORD
        )
        token = await accounts.create_api_token(s, owner, "schemathesis")
        cookie, login = await accounts.start_session(s, owner, days=1)
        customer = await create_customer(s, tenant.id, {"display_name": "Ada"})
        item = await create_item(s, tenant.id, {"name": "Labor", "unit_price": "80.00", "taxable": True})
        await create_tax_rate(s, tenant.id, {"name": "State", "rate": "7.5"})
        lines = [{"item_id": item.id, "quantity": "1"}]
        invoice = await create_invoice(s, tenant.id, {"customer_id": customer.id, "status": "OPEN", "lines": lines})
        await record_payment(s, tenant.id, invoice.id, {"amount": "10.00"})
        await create_estimate(s, tenant.id, {"customer_id": customer.id, "lines": lines})
        await s.commit()
    await engine.dispose()
    return token, cookie, login.csrf_token


def test_issue14_schemathesis_every_operation(db_url: str) -> None:
    if db_url.startswith("postgresql"):
        # Each API call records its token's last use, a commit; this database is thrown away after the test,
        # so it needn't wait for the disk. About a third off the run on a busy machine.
        with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{db_url.rsplit("/", 1)[1]}" SET synchronous_commit TO off')
    token, cookie, csrf = asyncio.run(_signed_in_business(db_url))
    # Billing memory's local model loads once per process, in seconds: loaded first, so the read timeout times the
    # asks of GET /api/v1/memory/ask, not the load.
    embedders.local_model()
    settings = Settings(
        mode="test", database_url=db_url, encryption_keys=TEST_KEYS, public_url="http://testserver", log_level="WARNING"
    )
    app = create_app(settings)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,  # one at a time: the database's state, and so the run, is the same every time
            "headers": {"Authorization": f"Bearer {token}", "Cookie": f"fh_session={cookie}", "X-CSRF-Token": csrf},
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "mode": "all", "database": "none"},
            # One unexpected method per operation is enough to hold every path's 405 and its `Allow` to the
            # document (the app answers all of them alike); the default five would be an eighth of the run.
            "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": ["OPTIONS"]}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # Signing out would turn every later page case into a redirect to /login.
            "operations": [{"include-path": "/logout", "enabled": False}],
        }
    )
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=config)
    started = time.monotonic()
    operations: set[str] = set()
    cases: Counter[str] = Counter()
    failures: dict[tuple[str, str], str] = {}
    errors: dict[tuple[str, str], str] = {}
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                operations.add(event.recorder.label)
                cases[event.phase.value] += len(event.recorder.cases)
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.failure_info is not None:
                            failure = check.failure_info.failure
                            failures.setdefault(
                                (event.recorder.label, check.name),
                                f"{failure.title}: {failure.message}\n{check.failure_info.code_sample}",
                            )
            elif isinstance(event, events.NonFatalError | events.FatalError):
                # An exception out of the app (a 500 the test transport re-raises), or a broken run.
                error = getattr(event, "value", None) or getattr(event, "exception", None)
                errors.setdefault((getattr(event, "label", ""), type(error).__name__), str(error)[:300])
    finally:
        asgi.shutdown_lifespans()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations, {sum(cases.values())} cases {dict(cases)}, {elapsed:.1f} s")
    assert not errors, "\n".join(f"{op}: {kind}: {text}" for (op, kind), text in errors.items())
    assert not failures, "\n\n".join(f"{op} [{check}]\n{text}" for (op, check), text in sorted(failures.items()))
    documented = {f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops}
    assert operations == documented - {"POST /logout"}
