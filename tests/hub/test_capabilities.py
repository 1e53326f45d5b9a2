"""Capabilities are found by folder: their routes, templates and periodic tasks reach the house with no list."""

from __future__ import annotations

import types

import pytest

from fieldhub.hub import registry
from fieldhub.hub.sync import dispatch
from fieldhub.hub.sync.dispatch import PeriodicTask


async def _nothing(env: object) -> int:
    return 0


def _with_tasks(monkeypatch: pytest.MonkeyPatch, tasks: list[PeriodicTask]) -> None:
    module = types.SimpleNamespace(periodic_tasks=lambda env: tasks)
    monkeypatch.setattr(registry, "capability_names", lambda: ["calendar"])
    monkeypatch.setattr(registry, "capability_module", lambda cap, name: module if name == "tasks" else None)


def test_every_capability_folder_is_a_capability_kind() -> None:
    from fieldhub.hub.spec import Capability

    assert set(registry.capability_names()) <= {c.value for c in Capability}


def test_a_capabilitys_periodic_tasks_join_the_hubs(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_tasks(monkeypatch, [PeriodicTask("calendar.poll", 60, _nothing)])
    names = [t.name for t in dispatch.capability_tasks(env=None)]  # type: ignore[arg-type]
    assert names == ["calendar.poll"]


def test_a_capability_may_not_name_a_task_outside_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_tasks(monkeypatch, [PeriodicTask("webhooks.sweep", 60, _nothing)])
    with pytest.raises(ValueError, match="outside its own"):
        dispatch.capability_tasks(env=None)  # type: ignore[arg-type]


def test_module_names_are_checked() -> None:
    with pytest.raises(ValueError):
        registry.capability_module("calendar", "../x")
    assert registry.capability_module("no_such_kind", "routes") is None
