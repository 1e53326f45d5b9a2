"""The health score: every threshold at its boundary, worst signal wins, status overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fieldhub.hub.connections.health import HEALTH_SCORING, Health, HealthInputs, Tier, TokenState, score
from fieldhub.hub.connections.models import ConnectionStatus

OK = ConnectionStatus.CONNECTED
TINY = timedelta(seconds=1)


def test_tiers_have_their_dots_and_colours() -> None:
    shown = {t: (Health(t).dots, Health(t).tone, Health(t).label) for t in Tier}
    assert shown[Tier.EXCELLENT] == (5, "green", "Excellent")
    assert shown[Tier.GOOD] == (4, "blue", "Good")
    assert shown[Tier.WARNING] == (3, "yellow", "Warning")
    assert shown[Tier.CRITICAL] == (2, "red", "Critical")
    assert shown[Tier.DISCONNECTED] == (1, "grey", "Disconnected")


def test_connected_with_a_valid_token_and_nothing_else_known_is_excellent() -> None:
    assert score(HealthInputs(OK)).tier is Tier.EXCELLENT


def test_status_decides_first() -> None:
    assert score(HealthInputs(ConnectionStatus.DISCONNECTED, failure_ratio=0.0)).tier is Tier.DISCONNECTED
    health = score(HealthInputs(ConnectionStatus.NEEDS_REAUTH))
    assert health.tier is Tier.CRITICAL and "Reconnect" in health.reasons[0]
    assert score(HealthInputs(ConnectionStatus.ERROR)).tier is Tier.CRITICAL


@pytest.mark.parametrize(
    ("token", "tier"),
    [(TokenState.VALID, Tier.EXCELLENT), (TokenState.EXPIRING, Tier.WARNING), (TokenState.NEEDS_REAUTH, Tier.CRITICAL)],
)
def test_token_state(token: TokenState, tier: Tier) -> None:
    assert score(HealthInputs(OK, token=token)).tier is tier


def _boundaries(ladder, step):
    """(value, expected tier) at each bound and just past it."""
    cases = []
    for i, (bound, tier) in enumerate(ladder):
        cases.append((bound, tier))
        nxt = ladder[i + 1][1] if i + 1 < len(ladder) else None
        cases.append((bound + step, nxt))
    return cases


@pytest.mark.parametrize(("value", "tier"), _boundaries(HEALTH_SCORING.failure_ratio, 0.0001))
def test_failure_ratio_boundaries(value: float, tier: Tier | None) -> None:
    assert score(HealthInputs(OK, failure_ratio=value)).tier is (tier or HEALTH_SCORING.worst)


@pytest.mark.parametrize(("value", "tier"), _boundaries(HEALTH_SCORING.pending_age, TINY))
def test_pending_age_boundaries(value: timedelta, tier: Tier | None) -> None:
    assert score(HealthInputs(OK, oldest_pending_age=value)).tier is (tier or HEALTH_SCORING.worst)


@pytest.mark.parametrize(("value", "tier"), _boundaries(HEALTH_SCORING.success_age, TINY))
def test_last_success_boundaries(value: timedelta, tier: Tier | None) -> None:
    assert score(HealthInputs(OK, last_success_age=value)).tier is (tier or HEALTH_SCORING.worst)


@pytest.mark.parametrize(("value", "tier"), _boundaries(HEALTH_SCORING.webhook_age, TINY))
def test_webhook_freshness_boundaries(value: timedelta, tier: Tier | None) -> None:
    assert score(HealthInputs(OK, webhook_age=value)).tier is (tier or HEALTH_SCORING.webhook_worst)


def test_concrete_thresholds() -> None:
    # The numbers the docs promise, so a change to HEALTH_SCORING is a visible decision.
    assert score(HealthInputs(OK, failure_ratio=0.05)).tier is Tier.GOOD
    assert score(HealthInputs(OK, failure_ratio=0.2)).tier is Tier.WARNING
    assert score(HealthInputs(OK, failure_ratio=0.21)).tier is Tier.CRITICAL
    assert score(HealthInputs(OK, oldest_pending_age=timedelta(hours=6, seconds=1))).tier is Tier.CRITICAL
    assert score(HealthInputs(OK, last_success_age=timedelta(hours=72))).tier is Tier.WARNING
    assert score(HealthInputs(OK, webhook_age=timedelta(days=30))).tier is Tier.WARNING


def test_worst_signal_wins_and_says_why() -> None:
    health = score(HealthInputs(OK, failure_ratio=0.01, oldest_pending_age=timedelta(hours=3)))
    assert health.tier is Tier.WARNING
    assert health.reasons == ("A record has waited 3 hours to sync.",)
