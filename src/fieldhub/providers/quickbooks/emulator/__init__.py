"""QuickBooks Online's local stand-in: `create_emulator(config)` builds a two-company sandbox (README.md)."""

from __future__ import annotations

import httpx

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.quickbooks.emulator.app import QuickBooksEmulator
from fieldhub.providers.quickbooks.emulator.seed import CA_REALM, US_REALM


def create_emulator(
    config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> QuickBooksEmulator:
    """The ASGI app; webhooks go to `config.hub_url + "/webhooks/quickbooks"` through `webhook_transport` if given."""
    return QuickBooksEmulator(config, webhook_transport=webhook_transport)


__all__ = ["CA_REALM", "US_REALM", "QuickBooksEmulator", "create_emulator"]
