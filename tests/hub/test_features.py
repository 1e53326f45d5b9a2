"""hub/features.py: what a provider does is read from the code in its folder, and turns true only with that code.

Issue 15 item 1: no sync dashboard, ledger row or run for work that is not done.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select

from fieldhub.db import utcnow
from fieldhub.hub import features, registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.sync.dispatch import due_connections
from fieldhub.hub.sync.engine import sync_connection
from fieldhub.hub.sync.models import LedgerRow, LedgerState, Operation, SyncRun


def test_issue15_item1_what_works_is_derived_from_the_code() -> None:
    qbo = features.get("quickbooks")
    assert qbo.syncs
    assert set(qbo.sends) == {"customer", "item", "invoice", "payment", "deposit", "refund"}
    assert qbo.receives == ("customer",)  # two-way customers: inbound.py's IMPORTS beside poll
    assert [(f.entity, f.way) for f in qbo.coming] == [("tax_rate", "import")]  # planned in its toml
    for key in ("freshbooks", "wave", "google_business_profile"):
        found = features.get(key)
        assert not found.syncs and not found.live and found.coming, key
        assert found.coming_note.endswith("arrives in a coming release"), key
    for key in ("docusign", "dropbox_sign"):
        assert not features.get(key).live, key
    # E-signatures are not a sync: the provider's esign.py says what it does (issue 20).
    assert features.get("docusign").does and not features.get("docusign").coming
    assert features.get("docusign").now_line.startswith("Sends estimates for signature")
    voice = features.get("voice_ai")  # webhooks.py's handle brings the assistant's calls in (issue 21)
    assert not voice.syncs and voice.receives == ("call",) and not voice.coming
    syncing = {s.key for s in registry.all() if features.get(s.key).syncs}
    assert syncing == {"quickbooks", "google_calendar", "outlook", "xero"}
    gcal = features.get("google_calendar")  # jobs go out through the calendar capability's adapter (issue 17)
    assert gcal.sends == ("job",) and gcal.receives == ("job", "time_block") and not gcal.coming
    stripe = features.get("stripe")  # events bring its payments, refunds and payouts in; nothing goes out
    assert not stripe.syncs and set(stripe.receives) == {"payment", "refund", "payout"} and not stripe.coming
    thumbtack = features.get("thumbtack")  # webhooks.py's handle brings leads and their messages in
    assert not thumbtack.syncs and set(thumbtack.receives) == {"lead", "lead_message"} and not thumbtack.coming
    gbp = features.get("google_business_profile")
    assert gbp.coming_note == "syncing reviews and review replies arrives in a coming release"
    assert [words for _, words in gbp.lines(gbp.coming)] == [
        "Reviews from Google Business Profile",
        "Review replies to Google Business Profile",
    ]
    xero = features.get("xero")  # its export adapter sends all six (issue 16 item 3); tax rates are still to come
    assert set(xero.sends) == {"customer", "item", "invoice", "payment", "deposit", "refund"}
    assert [(f.entity, f.way) for f in xero.coming] == [("tax_rate", "import")]
    freshbooks = features.get("freshbooks")
    assert ("customer", "Customers both ways with FreshBooks") in freshbooks.lines(freshbooks.coming)
    card = registry.registry().card("calendar")
    assert features.card_now_line(card) == "Works now: syncs jobs and time blocks."
    assert features.card_now_line(registry.registry().card("quickbooks")).startswith("Works now: syncs customers")


def test_issue15_item1_an_export_turns_live_only_when_its_adapter_is_in_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "providers"
    shutil.copytree(registry.registry().root / "freshbooks", root / "freshbooks")
    spec = registry.get("freshbooks")
    assert not features.of_spec(spec, root).syncs
    sync = root / "freshbooks" / "sync.py"
    # Entities named without the engine's hook are not an adapter, nor is the hook without the entities.
    sync.write_text('"""FreshBooks export."""\n\nEXPORTS = ("invoice",)\n')
    assert not features.of_spec(spec, root).syncs
    adapter = "\n\ndef create_adapter(connection, client, settings):\n    ...\n"
    sync.write_text('"""FreshBooks export."""' + adapter)
    assert not features.of_spec(spec, root).syncs
    sync.write_text(
        '"""FreshBooks export."""\n\nREMOTE = {"invoice": "invoices", "payment": "payments"}\nEXPORTS = tuple(REMOTE)'
        + adapter
    )
    found = features.of_spec(spec, root)
    assert found.syncs and found.sends == ("invoice", "payment")
    assert "refund" in {f.entity for f in found.coming}  # still to come: no adapter sends it
    assert found.receives == ()  # reading changes back needs inbound.py's poll or webhooks.py's handle
    (root / "freshbooks" / "inbound.py").write_text(
        'IMPORTS = ("customer",)\n\n\nasync def poll(env, connection_id):\n    ...\n'
    )
    assert features.of_spec(spec, root).receives == ("customer",)


async def test_issue15_item1_no_run_is_written_where_no_work_was_tried(app, session, biz) -> None:  # noqa: ANN001
    """A provider with no adapter, a paused connection, nothing due: no run row, and no sweep wakes a worker."""
    env = env_for(app)
    coming = Connection(
        tenant_id=biz.tenant.id, provider="freshbooks", account_id="t1", connected_at=utcnow(), settings={}
    )
    paused = Connection(
        tenant_id=biz.tenant.id,
        provider="quickbooks",
        account_id="r1",
        connected_at=utcnow(),
        status=ConnectionStatus.NEEDS_REAUTH,
        settings={},
    )
    idle = Connection(
        tenant_id=biz.tenant.id, provider="quickbooks", account_id="r2", connected_at=utcnow(), settings={}
    )
    session.add_all([coming, paused, idle])
    await session.flush()
    # Rows left from before the ledger stopped collecting for providers without an adapter, and a paused one's.
    for conn in (coming, paused):
        session.add(
            LedgerRow(
                tenant_id=biz.tenant.id,
                connection_id=conn.id,
                entity="customer",
                local_id=1,
                local_version=1,
                state=LedgerState.PENDING,
                operation=Operation.UPSERT,
                next_attempt_at=utcnow(),
            )
        )
    await session.commit()
    for conn in (coming, paused, idle):
        assert await sync_connection(env, conn.id, trigger="manual") is None
    assert await session.scalar(select(func.count()).select_from(SyncRun)) == 0
    # FreshBooks' row is set aside with the reason (nothing would ever send it); the paused one waits for Reconnect.
    states = dict((await session.execute(select(LedgerRow.connection_id, LedgerRow.state))).all())
    assert (states[coming.id], states[paused.id]) == (LedgerState.SKIPPED, LedgerState.PENDING)
    assert await due_connections(env) == []  # and no sweep wakes a worker for either
