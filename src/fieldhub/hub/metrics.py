"""Prometheus counters for provider traffic (the default registry; whoever serves /metrics exposes them)."""

from __future__ import annotations

from prometheus_client import Counter

PROVIDER_CALLS = Counter(
    "fieldhub_provider_calls",
    "HTTP calls to providers, by provider and outcome (the status code, or timeout/network).",
    ["provider", "status"],
)
PROVIDER_429 = Counter(
    "fieldhub_provider_429",
    "Calls a provider answered 429 Too Many Requests: the shared limiter should keep this near zero.",
    ["provider"],
)
# Counted wherever a refresh is attempted: the HTTP client's refresh on 401, and refresh-ahead.
TOKEN_REFRESHES = Counter(
    "fieldhub_token_refreshes",
    "Access-token refreshes attempted, by provider.",
    ["provider"],
)
