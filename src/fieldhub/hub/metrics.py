"""Prometheus counters for provider traffic (the default registry; whoever serves /metrics exposes them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# --- sync: latency observed by hub/sync/engine.py; the ledger gauges are read from the database at
# each scrape (web/routes/metrics.py), so every worker process reports the same, whole-hub figures ---

SYNC_LATENCY = Histogram(
    "fieldhub_sync_latency_seconds",
    "From a record's change being committed (its ledger row falling due) to the provider confirming it.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
SYNC_PENDING = Gauge(
    "fieldhub_sync_pending", "Ledger rows waiting to be pushed, per connection.", ["provider", "connection"]
)
SYNC_FAILED = Gauge(
    "fieldhub_sync_failed",
    "Ledger rows a provider rejected, waiting for a fix, per connection.",
    ["provider", "connection"],
)
