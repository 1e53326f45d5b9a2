"""Every benchmark runs through `fieldhub bench <name> --json` at a tiny size and prints one JSON object.

Each runs in its own process, as a user would run it, so the benchmarks cannot rot: the keys the docs
quote are there, and what was pushed to the emulator is there exactly once. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import BACKENDS, PG_URL

COMMON = {"benchmark", "database", "loadavg_start", "loadavg_end"}


def bench(name: str, *options: str, database_url: str = "") -> dict:
    command = [sys.executable, "-m", "fieldhub.cli", "bench", name, "--json", *options]
    if database_url:
        command += ["--database-url", database_url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout[-3000:]  # one JSON object and nothing else on stdout
    figures = json.loads(lines[0])
    assert figures["benchmark"] == name
    assert set(figures) >= COMMON
    return figures


def sets(**values: object) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def exact(figures: dict) -> None:
    assert (figures["duplicates"], figures["missing"], figures["amount_mismatches"]) == (0, 0, 0), figures
    assert figures["unsynced_left"] == 0, figures


def test_latency():
    figures = bench("latency", *sets(invoices=3, warmup=1))
    assert {"latency_ms_p50", "latency_ms_p99", "latency_ms_max", "http_429"} <= set(figures)
    assert figures["duplicates"] == figures["missing"] == 0
    assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p99"] <= figures["latency_ms_max"]


def test_backfill_on_a_scaled_clock():
    figures = bench("backfill", "--time-scale", "600", *sets(invoices=40, customers=4, items=2))
    exact(figures)
    assert figures["parameters"]["time_scale"] == 600
    assert figures["records"]["total"] == 40 + 4 + 2 + 10
    assert figures["http_429"] == 0
    assert {"achieved_over_ceiling", "ceiling_records_per_minute", "ideal_minutes"} <= set(figures)
    assert figures["ideal_minutes"] == 0 and figures["achieved_over_ceiling"] is None  # one window: nothing binds


def test_backfill_ceiling_arithmetic():
    from importlib.util import module_from_spec, spec_from_file_location

    from fieldhub.settings import ROOT

    spec = spec_from_file_location("bench_backfill_test", ROOT / "bench" / "backfill.py")
    assert spec and spec.loader
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = {"customers": 1000, "items": 50, "invoices": 10000, "payments": 2500}
    limits = {"per_minute": 500, "batch_size": 30, "batch_per_minute": 40}
    ideal = module.ceiling(counts, **limits)
    assert ideal["batch_requests"] == 34 + 2 + 334 + 84
    # 454 batches at 40 a minute, a sliding window: the first 40 at once, the 454th at minute 11.
    assert ideal["ideal_minutes"] == 11
    small = module.ceiling({"customers": 4, "items": 2, "invoices": 40, "payments": 10}, **limits)
    assert small["ideal_minutes"] == 0  # fits in one window: the limits never bind


def test_overhead():
    figures = bench("overhead", *sets(invoices=12, customers=3, items=2))
    exact(figures)
    assert figures["cpu_ms_per_record"] > 0 and figures["records_per_second"] > 0


def test_phases():
    figures = bench("phases", *sets(invoices=40, customers=4, items=2))
    assert figures["run_status"] == "success" and figures["records"]["total"] == 40 + 4 + 2 + 10
    phases = figures["phases_cpu_ms_per_record"]
    assert 0 < phases["settle_replies"] < figures["cpu_ms_per_record"]
    assert figures["phases_calls"]["http_request"] >= figures["phases_calls"]["push_batch"] >= 4


def test_memory():
    figures = bench("memory", *sets(records=60, mark=20, customers=3, items=2))
    assert figures["unsynced_left"] == 0
    assert figures["emulator_invoices_and_payments"] == figures["expected_invoices_and_payments"] > 0
    assert 0 < figures["rss_mb_at_10k"] <= figures["rss_mb_peak"]


def test_login():
    from argon2 import PasswordHasher

    figures = bench("login", *sets(attackers=3, idle_seconds=1, spray_seconds=2, targeted_seconds=3, probe_gap_ms=50))
    real = PasswordHasher()  # argon2-cffi's defaults, which the served hub keeps (the suite swaps in cheap ones)
    assert figures["argon2"] == f"m={real.memory_cost},t={real.time_cost},p={real.parallelism}"
    assert {"get_login_ms_p50", "get_login_ms_p99", "account_failures_checked_per_minute_max"} <= set(figures)
    assert all(figures["get_login_ms"][phase]["n"] > 0 for phase in ("idle", "spray", "targeted"))
    assert set(figures["spray"]["statuses"]) == {"400"}  # a spray binds no rule: every attempt was checked
    checked = figures["targeted"]["statuses"].get("400", 0)
    assert 0 < checked == figures["account_failures_checked_per_minute_max"] <= figures["account_limits"]["per_minute"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pending(backend):
    url = PG_URL if backend == "postgresql" else ""
    figures = bench("pending", *sets(rows=3000, pending=10, repeat=2), database_url=url)
    assert figures["pending_rows"] == 10
    assert any("ix_sync_ledger_due" in line for line in figures["plan_lookup"]), figures["plan_lookup"]
    assert any("ix_sync_ledger_sweep" in line for line in figures["plan_sweep"]), figures["plan_sweep"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_history(backend):
    url = PG_URL if backend == "postgresql" else ""
    figures = bench("history", *sets(runs=3000, ledger=200, repeat=2), database_url=url)
    pages = figures["rows_on_page"]
    # A page is 50 runs; of 3,000, 1 % failed and 0.1 % refunds; no run is a deposit's.
    assert pages == {"first_page": 50, "failed_page": 30, "rare_entity_page": 3, "empty_filter_page": 0}, pages
    assert set(figures["timings"]) == {
        "first_page",
        "deep_page",
        "failed_page",
        "rare_entity_page",
        "empty_filter_page",
        "dashboard",
    }


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="scale runs on PostgreSQL, which does not answer here")
def test_scale():
    options = sets(connections=2, invoices=4, customers=1, items=1, latency=0.01, warmup=2)
    figures = bench("scale", *options, database_url=PG_URL)
    for round_ in (figures["one_worker"], figures["two_workers"]):
        exact(round_)
        assert round_["records"] == 2 * (4 + 1 + 1 + 1)
    assert figures["speedup"] > 0


def test_issue17_calendar():
    figures = bench("calendar", *sets(changes=4, moves=2))
    assert {"job_to_event_ms_p50", "job_to_event_ms_p99", "event_to_job_ms_p50", "event_to_job_ms_p99"} <= set(figures)
    assert figures["jobs_with_more_than_one_event"] == 0 and figures["push_notices"] >= 2
    assert 0 < figures["event_to_job_ms_p50"] <= figures["event_to_job_ms_p99"] < float("inf")


def test_memory_ask():
    figures = bench("memory-ask", *sets(records=120, asks=6, kinds=12))
    assert figures["records"] == 120 and figures["asks"] == 6
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(figures["per_question_p99_ms"]) == set(figures["answers"])
