"""Where each provider is reached: its emulator in demo and test mode (mounted in-process), the real URL in production.

In demo mode the mounted emulators keep their state beside the demo's database across restarts (persist.py).

In demo and test mode every provider whose folder has `emulator/` with `create_emulator` is built and
mounted in the hub at `/emulators/<key>`, and every URL of that provider (authorize, token, revoke,
API) becomes `{base_url}/emulators/<key>` + the path of the real URL, so the adapter cannot tell the
emulator from the real service except by base URL. The hub's own server-side calls to a mounted
emulator go straight into its ASGI app through httpx.ASGITransport, no socket needed. A provider's
`base_url` credential (FIELDHUB_PROVIDERS__<KEY>__BASE_URL) points it at an emulator on a port instead
(`fieldhub emulate <key> --port P`), in any mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from fieldhub.hub import registry
from fieldhub.hub.emulator.core import Emulator, EmulatorConfig
from fieldhub.hub.emulator.persist import Keeper, state_folder
from fieldhub.hub.http import ssl_context
from fieldhub.log import get_logger
from fieldhub.settings import Settings

EMULATOR_PREFIX = "/emulators"
EMULATED_MODES = ("demo", "test")
log = get_logger(__name__)


class PrefixStripped:
    """Shows an emulator the paths it would see as a standalone server (no `/emulators/<key>` in front)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                path = path[len(self.prefix) :] or "/"
            # root_path keeps the prefix, so URLs an emulator builds from request.base_url (hosted pages) point
            # back through the mount; routing still sees the stripped path.
            # (Starlette's base_url reads app_root_path, which a Mount sets to the hub's own root.)
            root = scope.get("root_path", "")
            root = root if root.endswith(self.prefix) else root + self.prefix
            scope = {**scope, "path": path, "raw_path": path.encode(), "root_path": root, "app_root_path": root}
        await self.app(scope, receive, send)


def has_emulator(key: str) -> bool:
    folder = registry.registry().root / key / "emulator"
    return (folder / "__init__.py").is_file()


def emulator_config(settings: Settings, key: str) -> EmulatorConfig:
    creds = settings.provider(key)
    return EmulatorConfig(
        hub_url=settings.base_url,
        client_id=creds.client_id,
        client_secret=creds.client_secret.get_secret_value(),
        webhook_secret=creds.webhook_secret.get_secret_value(),
    )


def build_emulator(settings: Settings, key: str) -> Emulator | None:
    """The provider's emulator built with the hub's (demo) credentials, or None if it ships none."""
    module = registry.import_module(key, "emulator") if has_emulator(key) else None
    factory = getattr(module, "create_emulator", None)
    if factory is None:
        return None
    emulator = factory(emulator_config(settings, key))
    # Api-key providers have no OAuth app; their emulator checks the key the hub is configured with.
    if hasattr(emulator, "api_keys"):
        emulator.api_keys.add(settings.provider(key).api_key.get_secret_value())
    return emulator


@dataclass
class Endpoints:
    """Resolves a provider's real URLs to where they are served here, and the transport to reach them."""

    settings: Settings
    emulators: dict[str, Emulator] = field(default_factory=dict)  # mounted in this process
    _apps: dict[str, ASGIApp] = field(default_factory=dict)
    keeper: Keeper | None = None  # the demo's: the mounted emulators' state on disk (persist.py)

    async def start(self, sessionmaker: Any) -> None:
        """At the hub's start, before it serves: the demo's emulators resume the state they had."""
        if self.keeper is not None:
            await self.keeper.start(sessionmaker)

    async def stop(self) -> None:
        if self.keeper is not None:
            await self.keeper.stop()

    def _override(self, key: str) -> str:
        return self.settings.provider(key).base_url.rstrip("/")

    def emulated(self, key: str) -> bool:
        return bool(self._override(key)) or (self.settings.mode in EMULATED_MODES and has_emulator(key))

    def root(self, key: str) -> str:
        """Where the provider's emulator answers, or "" when the real service is used."""
        if override := self._override(key):
            return override
        if self.settings.mode in EMULATED_MODES and has_emulator(key):
            return f"{self.settings.base_url}{EMULATOR_PREFIX}/{key}"
        return ""

    def url(self, key: str, real_url: str) -> str:
        root = self.root(key)
        if not root:
            return real_url
        parts = urlsplit(real_url)
        return root + parts.path + (f"?{parts.query}" if parts.query else "")

    def transport(self, key: str) -> httpx.AsyncBaseTransport | None:
        """In-process transport to a mounted emulator; None means the network (real service or a port)."""
        if self._override(key) or key not in self._apps:
            return None
        return httpx.ASGITransport(app=self._apps[key])

    def client(self, key: str, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 30.0)
        transport = self.transport(key)
        if transport is not None:
            kwargs["transport"] = transport
        kwargs.setdefault("verify", ssl_context())
        return httpx.AsyncClient(**kwargs)

    def add(self, key: str, emulator: Emulator) -> ASGIApp:
        self.emulators[key] = emulator
        app = PrefixStripped(emulator, f"{EMULATOR_PREFIX}/{key}")
        self._apps[key] = app
        return app


def mount_emulators(app: Any, settings: Settings) -> Endpoints:
    """In demo and test mode, build and mount every provider's emulator; production mounts nothing."""
    endpoints = Endpoints(settings)
    if settings.mode in EMULATED_MODES:
        for spec in registry.all():
            if settings.provider(spec.key).base_url:
                continue  # pointed at an emulator on a port: nothing to mount
            emulator = build_emulator(settings, spec.key)
            if emulator is None:
                continue
            app.mount(f"{EMULATOR_PREFIX}/{spec.key}", endpoints.add(spec.key, emulator))
        log.info("emulator.mounted", providers=sorted(endpoints.emulators))
        folder = state_folder(settings)
        if folder is not None and endpoints.emulators:
            endpoints.keeper = Keeper(folder, endpoints.emulators)
    app.state.endpoints = endpoints
    return endpoints
