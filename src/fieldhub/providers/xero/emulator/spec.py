"""Xero's published OpenAPI documents (shared/specs/xero) as referees for the emulator's replies and requests.

The shared Referee counts a key its schema does not name as a problem. Xero's real replies carry a few the schemas
leave out but the spec's own examples show, and those alone are let through (`XERO_EXTRAS`): the envelope's `Id`,
`Status`, `ProviderName` and `DateTimeUTC`; the `DateString`/`DueDateString` twins of MS JSON dates; and, in a
ValidationException, each element as it was submitted (facts §2.4), which the `Element` schema does not list.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from fieldhub.hub.emulator.openapi import Referee, find_shared

FILES = {"accounting": "xero/xero_accounting.yaml", "identity": "xero/xero-identity.yaml"}
BASE = {"accounting": "/api.xro/2.0", "identity": ""}
XERO_EXTRAS = re.compile(
    r"^(?:(?:Id|Status|ProviderName|DateTimeUTC)"  # the envelope
    r"|\w+\.\d+\.(?:DateString|DueDateString)"  # an object's date twins
    r"|Elements\.\d+\..+"  # a refused element, as submitted
    r"): not in the spec's schema$"
)


class XeroReferee(Referee):
    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str] | None:
        if path.lower().startswith("/connections"):
            path = "/Connections" + path[len("/connections") :]  # api.xero.com ignores case; the spec does not
        problems = super().response_errors(method, path, status, body)
        return None if problems is None else [p for p in problems if not XERO_EXTRAS.match(p)]


@functools.lru_cache(maxsize=2)
def load_spec(which: Literal["accounting", "identity"] = "accounting") -> XeroReferee | None:
    path = find_shared(FILES[which])
    return XeroReferee(path, base_path=BASE[which]) if path else None
