"""The calendar capability's periodic work: keep push channels open on every calendar read (push.py)."""

from __future__ import annotations

from fieldhub.capabilities.calendar import push
from fieldhub.hub.oauth.env import OAuthEnv
from fieldhub.hub.sync.dispatch import PeriodicTask

WATCH_EVERY = 60.0


def periodic_tasks(env: OAuthEnv) -> list[PeriodicTask]:
    return [PeriodicTask("calendar.watch", WATCH_EVERY, push.watch_all)]
