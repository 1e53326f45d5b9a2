"""Process set-up shared by the commands: the event loop they run on, and the collector tuned after start-up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


# The youngest generation is collected after this many more allocations than frees (CPython's default:
# 700). See tune_gc_after_startup.
YOUNG_THRESHOLD = 10_000


def tune_gc_after_startup() -> None:
    """Once start-up is done: freeze what is alive out of the collector's reach, and collect less often.

    Start-up leaves about 170,000 tracked objects (modules, mappers, routes, settings) that live as
    long as the process. A sync run allocates fast and keeps little, so full collections come often,
    and each one walked all of those again: 12 % of a backfill's CPU (0.16 ms a record, measured with
    gc.callbacks around bench/phases.py). Frozen objects are still freed by reference counting; only
    cycles among them are never collected, and the collection just before the freeze clears those.

    Then the youngest generation: almost everything a run allocates is freed by reference counting, yet
    at CPython's threshold of 700 a 6,800-record run still made 570 young and 51 middle collections,
    4.7 % of its CPU (0.22 of 4.7 s, gc.callbacks around bench/overhead.py). At 10,000 it made 3 (0.011 s).
    Cyclic garbage waits a little longer to be found; the process holds a few thousand objects more.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop, the event loop `fieldhub serve` runs on (uvicorn picks it).

    `fieldhub worker`, `fieldhub sync now` and the benchmarks run the same sync engine as the embedded
    workers inside `serve`, so they run on the same loop: one loop to reason about and to measure.
    uvloop's loop is also cheaper per await, and a sync run awaits the database and the provider for
    every statement and every batch.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
