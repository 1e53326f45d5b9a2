"""The Xero emulator served on a port for the official SDK (harness.py), and a Xero connection in the hub (hub.py)."""

import pytest

from tests.providers.xero.harness import served
from tests.providers.xero.hub import XeroSetup, connect_xero

__all__ = ["served", "xero"]


@pytest.fixture
async def xero(app, owner, session, biz) -> XeroSetup:  # noqa: ANN001 - the suite's fixtures
    return await connect_xero(app, owner, session)
