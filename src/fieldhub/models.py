"""Imports every table so that Base.metadata is complete (Alembic and tests read it from here).

Every `models.py` under fieldhub.core, fieldhub.hub, fieldhub.capabilities and fieldhub.providers is imported: a
new table needs no entry here.
"""

from __future__ import annotations

import importlib
import pkgutil

import fieldhub.capabilities
import fieldhub.core
import fieldhub.hub
import fieldhub.providers
from fieldhub.core import events  # noqa: F401 - domain_events lives outside a models.py
from fieldhub.db import Base


def _import_models() -> None:
    for package in (fieldhub.core, fieldhub.hub, fieldhub.capabilities, fieldhub.providers):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(".models"):
                importlib.import_module(info.name)


_import_models()
metadata = Base.metadata
