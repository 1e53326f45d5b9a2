"""Start-up: what lives from start-up on is out of the collector's reach, and the collector runs less often
(bench/phases.py and bench/overhead.py measured why)."""

from __future__ import annotations

import gc

from fieldhub.runtime import YOUNG_THRESHOLD, tune_gc_after_startup


def test_tuning_the_collector_freezes_the_startup_heap_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_after_startup()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the modules and mappers of this process, at least
        assert len(gc.get_objects(generation=2)) < frozen  # a full collection no longer walks them
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
