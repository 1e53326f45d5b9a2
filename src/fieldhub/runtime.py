"""Process set-up shared by the commands: the event loop they run on, and the heap frozen after start-up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def freeze_startup_heap() -> None:
    """Put everything alive once start-up is done out of the garbage collector's reach (gc.freeze).

    Start-up leaves about 170,000 tracked objects (modules, mappers, routes, settings) that live as
    long as the process. A sync run allocates fast and keeps little, so full collections come often,
    and each one walked all of those again: 12 % of a backfill's CPU (0.16 ms a record, measured with
    gc.callbacks around bench/phases.py). Frozen objects are still freed by reference counting; only
    cycles among them are never collected, and the collection just before the freeze clears those.
    """
    gc.collect()
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop, the event loop `fieldhub serve` runs on (uvicorn picks it).

    `fieldhub worker`, `fieldhub sync now` and the benchmarks run the same sync engine as the embedded
    workers inside `serve`, so they run on the same loop: one loop to reason about and to measure.
    uvloop's loop is also cheaper per await, and a sync run awaits the database and the provider for
    every statement and every batch.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
