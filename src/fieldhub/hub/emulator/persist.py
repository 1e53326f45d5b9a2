"""Emulator state that outlives the process: the demo's providers remember their companies, accounts and tokens.

The demo's database persists, so its emulators must too, or a restart finds every connection's tokens unknown
(Needs reconnect) and the QuickBooks company it synced to empty. In demo mode each mounted emulator keeps its
state (`Emulator.snapshot()`: the provider's objects, the OAuth server's codes and tokens, the clock's offset;
not the request log, faults or rate windows) in `<folder>/<key>.pickle`, the folder beside the demo's database.

A file is rewritten whenever the state changed: after every request, before the reply leaves (so whatever the
hub was told happened is on disk before it hears it, and a kill -9 loses nothing it believes done), every
`interval` seconds for what changes on its own (webhook deliveries), and at shutdown. Each write goes to a
temporary file that replaces the old one, so a kill mid-write leaves the previous state whole. (The page
cache holds it across a killed process; a power cut is not provided for: no fsync.)

The folder is bound to its database: `database` in it names the database's first tenant (its id and creation
time). A reset database (deleted, or another one) no longer matches, and the emulators start afresh with it.
Pickle, not JSON: the states hold Decimals, tuples as keys and shared references (a scheduled payout and the
payout it moves), and the file is read only by the process of the same checkout that wrote it; an unreadable
file (code changed) is set aside as `<key>.pickle.unreadable` and the emulator starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import make_url

from fieldhub.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fieldhub.hub.emulator.core import Emulator
    from fieldhub.settings import Settings

log = get_logger(__name__)
IDENTITY = "database"


class StateFile:
    """One emulator's state on disk: `load` once at start, `save` whenever it may have changed."""

    def __init__(self, emulator: Emulator, path: Path) -> None:
        self.emulator = emulator
        self.path = path
        self._digest = b""
        self.writes = 0

    def load(self) -> bool:
        if not self.path.is_file():
            return False
        try:
            with self.path.open("rb") as fh:
                state = pickle.load(fh)
            self.emulator.restore(state)
        except Exception as exc:  # a file of an older code's classes: start afresh rather than not at all
            aside = self.path.with_suffix(self.path.suffix + ".unreadable")
            self.path.replace(aside)
            log.warning("emulator.state.unreadable", emulator=self.emulator.key, error=type(exc).__name__)
            return False
        self._digest = hashlib.blake2b(pickle.dumps(self.emulator.snapshot())).digest()
        return True

    def save(self) -> bool:
        """Write the state if it changed since the last write; True when it did."""
        data = pickle.dumps(self.emulator.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.blake2b(data).digest()
        if digest == self._digest:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
        tmp.replace(self.path)
        self._digest = digest
        self.writes += 1
        return True


def state_folder(settings: Settings) -> Path | None:
    """Where the demo's emulators keep their state: beside its database (None outside demo mode)."""
    if settings.mode != "demo":
        return None
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(f"{db.stem}-emulators")
    from fieldhub.settings import VAR

    name = "-".join(str(p) for p in (url.host or "local", url.port or "", url.database or "") if p)
    return VAR / "demo-emulators" / name


async def database_identity(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """The database's first tenant (id and creation time): a reset or another database has another, or none."""
    from fieldhub.core.accounts.models import Tenant

    async with sessionmaker() as session:
        row = (await session.execute(select(Tenant.id, Tenant.created_at).order_by(Tenant.id).limit(1))).first()
    return "empty" if row is None else f"{row[0]}:{row[1].isoformat()}"


class Keeper:
    """Keeps every mounted emulator's state in `folder` while the hub runs (the lifespan starts and stops it)."""

    def __init__(self, folder: Path, emulators: Mapping[str, Emulator], interval: float = 2.0) -> None:
        self.folder = folder
        self.emulators = emulators
        self.interval = interval
        self.files: dict[str, StateFile] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
        """Bind the folder to this database (emptying it for another), load what it holds; returns who resumed."""
        identity = await database_identity(sessionmaker)
        marker = self.folder / IDENTITY
        if marker.is_file() and marker.read_text() != identity:
            shutil.rmtree(self.folder)
            log.info("emulator.state.reset", folder=str(self.folder))
        self.folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(identity)
        resumed = []
        for key, emulator in self.emulators.items():
            state = StateFile(emulator, self.folder / f"{key}.pickle")
            if state.load():
                resumed.append(key)
            emulator.state_file = state
            self.files[key] = state
        log.info("emulator.state.loaded", folder=str(self.folder), resumed=sorted(resumed))
        self._task = asyncio.get_running_loop().create_task(self._run())
        return resumed

    def save_all(self) -> int:
        return sum(1 for state in self.files.values() if state.save())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.save_all()
            except OSError as exc:
                log.warning("emulator.state.save_failed", error=str(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.save_all()
