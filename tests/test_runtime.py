"""Start-up: what lives from start-up on is out of the collector's reach (bench/phases.py measured why)."""

from __future__ import annotations

import gc

from fieldhub.runtime import freeze_startup_heap


def test_freezing_the_startup_heap_leaves_it_out_of_every_collection() -> None:
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the modules and mappers of this process, at least
        assert len(gc.get_objects(generation=2)) < frozen  # a full collection no longer walks them
    finally:
        gc.unfreeze()
