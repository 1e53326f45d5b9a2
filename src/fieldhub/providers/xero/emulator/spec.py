"""Xero's published OpenAPI documents (shared/specs/xero) as referees for the emulator's replies and requests."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from fieldhub.hub.emulator.openapi import OpenAPISpec, find_spec

FILES = {"accounting": "xero_accounting.yaml", "identity": "xero-identity.yaml"}


class XeroSpec(OpenAPISpec):
    name = "xero"


@functools.lru_cache(maxsize=2)
def load_spec(which: Literal["accounting", "identity"] = "accounting") -> XeroSpec | None:
    path = find_spec(Path("shared/specs/xero") / FILES[which], Path(__file__))
    return XeroSpec(path) if path else None
