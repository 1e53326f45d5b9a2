"""The Xero emulator served on a port, for the official SDK (harness.py)."""

from tests.providers.xero.harness import served

__all__ = ["served"]
