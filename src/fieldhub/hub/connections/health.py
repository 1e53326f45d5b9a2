"""The health score of a connection: five tiers from Excellent (5 green dots) to Disconnected (1 grey dot).

Each signal is graded on its own against the thresholds in HEALTH_SCORING, and the connection is as
healthy as its worst signal: one bad signal is enough to need attention, and the reasons say which.
Signals nobody measures yet are None and don't count (the sync engine supplies run figures later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum, StrEnum

from fieldhub.hub.connections.models import ConnectionStatus


class Tier(IntEnum):
    """Higher is healthier; the value is the number of dots."""

    DISCONNECTED = 1
    CRITICAL = 2
    WARNING = 3
    GOOD = 4
    EXCELLENT = 5

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def tone(self) -> str:
        return {5: "green", 4: "blue", 3: "yellow", 2: "red", 1: "grey"}[self.value]


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"  # the grant itself (refresh token) runs out soon: reconnect before it does
    NEEDS_REAUTH = "needs_reauth"


# (upper bound inclusive, tier): the first bound the value fits under gives the tier; past all: `worst`.
Ladder = tuple[tuple[float, Tier], ...]


@dataclass(frozen=True)
class Scoring:
    # Share of recent sync runs that failed (0..1).
    failure_ratio: Ladder
    # How long the oldest pending record has waited to sync.
    pending_age: tuple[tuple[timedelta, Tier], ...]
    # How long since the last successful sync.
    success_age: tuple[tuple[timedelta, Tier], ...]
    # How long since the provider last sent a webhook (only for providers that send them).
    webhook_age: tuple[tuple[timedelta, Tier], ...]
    # Past the last step of each ladder.
    worst: Tier
    # A silent webhook feed is worth a look, not an emergency: polling still catches changes.
    webhook_worst: Tier
    # The grant ends within this: the token state is EXPIRING.
    grant_expiring_within: timedelta
    token: dict[TokenState, Tier] = field(default_factory=dict)


HEALTH_SCORING = Scoring(
    failure_ratio=((0.0, Tier.EXCELLENT), (0.05, Tier.GOOD), (0.20, Tier.WARNING)),
    pending_age=(
        (timedelta(minutes=15), Tier.EXCELLENT),
        (timedelta(hours=1), Tier.GOOD),
        (timedelta(hours=6), Tier.WARNING),
    ),
    success_age=(
        (timedelta(hours=2), Tier.EXCELLENT),
        (timedelta(hours=24), Tier.GOOD),
        (timedelta(hours=72), Tier.WARNING),
    ),
    webhook_age=(
        (timedelta(hours=24), Tier.EXCELLENT),
        (timedelta(hours=72), Tier.GOOD),
    ),
    worst=Tier.CRITICAL,
    webhook_worst=Tier.WARNING,
    grant_expiring_within=timedelta(days=14),
    token={TokenState.VALID: Tier.EXCELLENT, TokenState.EXPIRING: Tier.WARNING, TokenState.NEEDS_REAUTH: Tier.CRITICAL},
)


@dataclass(frozen=True)
class HealthInputs:
    status: ConnectionStatus
    token: TokenState = TokenState.VALID
    failure_ratio: float | None = None
    oldest_pending_age: timedelta | None = None
    last_success_age: timedelta | None = None
    webhook_age: timedelta | None = None


@dataclass(frozen=True)
class Health:
    tier: Tier
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.tier.label

    @property
    def tone(self) -> str:
        return self.tier.tone

    @property
    def dots(self) -> int:
        return int(self.tier)


def _grade(value, ladder, worst: Tier) -> Tier:  # noqa: ANN001 - floats or timedeltas, compared alike
    for bound, tier in ladder:
        if value <= bound:
            return tier
    return worst


def _ago(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return (
        f"{round(hours * 60)} minutes"
        if hours < 2
        else (f"{round(hours)} hours" if hours < 48 else f"{round(hours / 24)} days")
    )


def score(inputs: HealthInputs, scoring: Scoring = HEALTH_SCORING) -> Health:
    if inputs.status == ConnectionStatus.DISCONNECTED:
        return Health(Tier.DISCONNECTED, ("Not connected.",))
    graded: list[tuple[Tier, str]] = []
    if inputs.status == ConnectionStatus.NEEDS_REAUTH or inputs.token is TokenState.NEEDS_REAUTH:
        graded.append((scoring.token[TokenState.NEEDS_REAUTH], "The sign-in stopped working: click Reconnect."))
    elif inputs.status == ConnectionStatus.ERROR:
        graded.append((scoring.worst, "The connection has an error."))
    else:
        tier = scoring.token[inputs.token]
        graded.append((tier, "The sign-in ends soon: reconnect before it does." if tier < Tier.EXCELLENT else ""))
    if inputs.failure_ratio is not None:
        tier = _grade(inputs.failure_ratio, scoring.failure_ratio, scoring.worst)
        graded.append((tier, f"{inputs.failure_ratio:.0%} of recent syncs failed."))
    if inputs.oldest_pending_age is not None:
        tier = _grade(inputs.oldest_pending_age, scoring.pending_age, scoring.worst)
        graded.append((tier, f"A record has waited {_ago(inputs.oldest_pending_age)} to sync."))
    if inputs.last_success_age is not None:
        tier = _grade(inputs.last_success_age, scoring.success_age, scoring.worst)
        graded.append((tier, f"The last successful sync was {_ago(inputs.last_success_age)} ago."))
    if inputs.webhook_age is not None:
        tier = _grade(inputs.webhook_age, scoring.webhook_age, scoring.webhook_worst)
        graded.append((tier, f"No update has arrived from the provider for {_ago(inputs.webhook_age)}."))
    worst = min(tier for tier, _ in graded)
    reasons = tuple(reason for tier, reason in graded if tier == worst and tier < Tier.EXCELLENT and reason)
    return Health(worst, reasons)
