"""The health check (hub/connections/probe.py): a grant revoked at any provider turns the connection to Needs
reconnect, with the alert, the banner and the hub card, while an outage or a 5xx leaves it alone (issue 15 item 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from fieldhub.db import utcnow
from fieldhub.hub import features, registry
from fieldhub.hub.connection_status import card_status
from fieldhub.hub.connections import probe
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.emulator.core import FaultRule
from fieldhub.hub.notify.banner import banner_alerts
from fieldhub.hub.notify.models import Notification
from fieldhub.hub.oauth.env import env_for
from fieldhub.hub.spec import AuthMode
from fieldhub.hub.sync import dispatch
from tests.hub.oauth.conftest import consent

OAUTH = [s.key for s in registry.all() if s.auth.mode is AuthMode.OAUTH2]
API_KEY = [s.key for s in registry.all() if s.auth.mode is AuthMode.API_KEY]


async def _connect(owner, session, key: str) -> Connection:  # noqa: ANN001
    if registry.get(key).auth.mode is AuthMode.API_KEY:
        r = await owner.submit(f"/integrations/{key}/api-key", {"api_key": f"demo-{key}-api-key"})
    else:
        r, _ = await consent(owner, key)
    assert r.status_code in (200, 303), r.text
    conn = await session.scalar(select(Connection).where(Connection.provider == key))
    assert conn is not None and conn.status == ConnectionStatus.CONNECTED
    return conn


async def _revoke(app, conn: Connection) -> None:  # noqa: ANN001
    """What the business does at the provider: remove fieldhub's access (the emulator's control surface)."""
    emulator = app.state.endpoints.emulators[conn.provider]
    # By how the provider signs in: an OAuth emulator may keep API keys too (Dropbox Sign checks callbacks with one).
    if registry.get(conn.provider).auth.mode is AuthMode.API_KEY:
        emulator.api_keys.clear()  # the key was deleted in the provider's dashboard
    elif hasattr(emulator, "connected"):
        emulator.connected.discard(conn.account_id)  # a Stripe account that removed the platform
        await emulator.oauth.control_revoke(conn.account_id)
    else:
        await emulator.oauth.control_revoke("")


async def _reload(session, conn: Connection) -> Connection:  # noqa: ANN001
    fresh = await session.scalar(
        select(Connection).where(Connection.id == conn.id).execution_options(populate_existing=True)
    )
    assert fresh is not None
    return fresh


def test_issue15_item2_every_provider_declares_a_health_check() -> None:
    """Every provider that signs in has a cheap call (toml [health] or a hook): none can stay Excellent unseen."""
    missing = [
        s.key for s in registry.all() if s.auth.mode is not AuthMode.NONE and not features.get(s.key).checks_health
    ]
    assert missing == []


@pytest.mark.parametrize("key", OAUTH + API_KEY)
async def test_issue15_item2_a_revoked_grant_turns_any_provider_to_needs_reconnect(
    app, session, owner, biz, key: str
) -> None:  # noqa: ANN001
    conn = await _connect(owner, session, key)
    env = env_for(app)
    assert (await probe.check(env, conn.id)).alive is True
    conn = await _reload(session, conn)
    assert conn.checked_at is not None and conn.check_error == "" and conn.status == ConnectionStatus.CONNECTED

    await _revoke(app, conn)
    outcome = await probe.check(env, conn.id)
    assert outcome.alive is False, outcome
    conn = await _reload(session, conn)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    assert conn.sync_error and key not in conn.sync_error  # plain words with the provider's name, never its key
    # The alert (one, in-app and by email through notify), the dashboard banner and the hub card.
    notes = list(await session.scalars(select(Notification).where(Notification.kind == "connection.needs_reauth")))
    assert len(notes) == 1
    assert any("needs to be reconnected" in a.message for a in await banner_alerts(session, biz.tenant.id))
    spec = registry.get(key)
    if spec.card:
        status = await card_status(session, biz.tenant.id, registry.registry().card(spec.card))
        assert (status.label, status.tone) == ("Needs reconnect", "red")
    # A second round does not check (or alert) a paused connection again.
    assert (await probe.check(env, conn.id)).alive is None
    assert len(list(await session.scalars(select(Notification)))) == 1


async def test_issue15_item2_gbp_revoked_shows_needs_reconnect_on_its_page_and_the_hub(app, session, owner) -> None:  # noqa: ANN001
    conn = await _connect(owner, session, "google_business_profile")
    page = (await owner.get("/settings/integrations/google_business_profile")).text
    assert ">Connected<" in page and 'class="health-label">Excellent' in page
    await _revoke(app, conn)
    await probe.check(env_for(app), conn.id)
    page = (await owner.get("/settings/integrations/google_business_profile")).text
    assert ">Needs reconnect<" in page and 'class="health-label">Critical' in page
    assert "Google Business Profile stopped accepting our access" in page
    hub = (await owner.get("/settings/integrations")).text
    card = hub[hub.index('data-card="google_business_profile"') :]
    assert "Needs reconnect" in card[: card.index("</a>")]
    dashboard = (await owner.get("/")).text
    assert f"Google Business Profile ({conn.account_name}) needs to be reconnected" in dashboard

    # Reconnecting brings it back: Connected, Excellent, the note gone.
    r, _ = await consent(owner, "google_business_profile", reconnect=conn.id)
    assert r.status_code == 303
    page = (await owner.get("/settings/integrations/google_business_profile")).text
    assert ">Connected<" in page and 'class="health-label">Excellent' in page and "stopped accepting" not in page


async def test_issue15_item2_an_outage_or_5xx_is_not_a_dead_grant(app, session, owner) -> None:  # noqa: ANN001
    conn = await _connect(owner, session, "google_business_profile")
    env = env_for(app)
    emulator = app.state.endpoints.emulators["google_business_profile"]
    for fault in (
        FaultRule(kind="status", status=503, path="/v1/accounts"),
        FaultRule(kind="status", status=500, path="/v1/accounts"),
        FaultRule(kind="timeout", delay=1.0, path="/v1/accounts"),
    ):
        emulator.faults[:] = [fault]
        outcome = await probe.check(env, conn.id, timeout=0.2, sleep=_no_sleep)
        assert outcome.alive is None, (fault, outcome)
        conn = await _reload(session, conn)
        assert conn.status == ConnectionStatus.CONNECTED and conn.sync_error == ""
        assert "Google Business Profile" in conn.check_error and "ask again" in conn.check_error
    page = (await owner.get("/settings/integrations/google_business_profile")).text
    assert ">Connected<" in page and "check-note" in page
    assert not list(await session.scalars(select(Notification)))

    # The token endpoint down while the token must be renewed: still not a dead grant.
    emulator.faults[:] = [FaultRule(kind="status", status=503, path="/token")]
    await emulator.oauth.control_expire("")
    assert (await probe.check(env, conn.id, sleep=_no_sleep)).alive is None
    assert (await _reload(session, conn)).status == ConnectionStatus.CONNECTED

    # The provider back: the check answers, the note goes.
    emulator.faults.clear()
    assert (await probe.check(env, conn.id)).alive is True
    assert (await _reload(session, conn)).check_error == ""


async def _no_sleep(seconds: float) -> None:
    return None


async def test_issue15_item2_the_periodic_task_checks_only_quiet_connections(app, session, owner) -> None:  # noqa: ANN001
    env = env_for(app)
    gbp = await _connect(owner, session, "google_business_profile")
    voice = await _connect(owner, session, "voice_ai")
    every = timedelta(seconds=env.settings.health_check_seconds)
    # Just connected: the connect proved both; nothing is due.
    assert await probe.due(env, every) == []
    long_ago = utcnow() - 2 * every
    await session.execute(update(Connection).values(connected_at=long_ago))
    await session.commit()
    assert sorted(await probe.due(env, every)) == sorted([gbp.id, voice.id])

    await _revoke(app, gbp)
    ran = await dispatch.run_periodic(env, holder="worker-a")
    assert "connections.health" in ran
    assert (await _reload(session, gbp)).status == ConnectionStatus.NEEDS_REAUTH
    voice = await _reload(session, voice)
    assert voice.status == ConnectionStatus.CONNECTED and voice.checked_at is not None
    # Checked now: not due again until the interval has passed, whoever's worker looks.
    assert await probe.due(env, every) == []
    assert "connections.health" not in await dispatch.run_periodic(env, holder="worker-b")


async def test_issue15_item2_a_refused_api_key_can_be_entered_again(app, session, owner) -> None:  # noqa: ANN001
    conn = await _connect(owner, session, "pagespeed")
    emulator = app.state.endpoints.emulators["pagespeed"]
    await _revoke(app, conn)
    assert (await probe.check(env_for(app), conn.id)).alive is False
    page = (await owner.get("/settings/integrations/seo")).text
    panel = page[page.index('data-connection-panel="pagespeed"') :]
    assert ">Needs reconnect<" in panel and 'action="/integrations/pagespeed/api-key"' in panel
    assert "refused the API key" in panel
    # The business makes a new key at Google and enters it here: the same connection is back.
    emulator.api_keys.add("a-new-pagespeed-key")
    r = await owner.submit("/integrations/pagespeed/api-key", {"api_key": "a-new-pagespeed-key"})
    assert r.status_code == 303
    conn = await _reload(session, conn)
    assert conn.status == ConnectionStatus.CONNECTED and conn.sync_error == ""
    assert (await probe.check(env_for(app), conn.id)).alive is True
    # The health check never ran an audit: the key alone was asked about.
    runs = [r for r in emulator.requests if r.path.endswith("runPagespeed")]
    audits = [r for r in runs if "url=" in r.query]
    assert len(audits) == 2 and len(runs) == 4  # the connect and the new key audited a page; the two checks didn't
