"""Stripe API versions: which ones Stripe knows, and the shape each answers in for the objects fieldhub uses.

Stripe reads the `Stripe-Version` request header (else the account's default version), refuses one it does
not know with 400 "Invalid Stripe API version: …", answers in that version's shape and echoes the version
it used in the `Stripe-Version` reply header. Additive changes (new fields) reach every version; only the
breaking ones are tied to a version, so only those are rendered here.

What is covered (the objects fieldhub reads; evidence: spec3.yaml and fixtures3.json at 2023-08-16 against
stripe-mock's fixtures3.json of 2025-11, both in shared/specs/stripe):
- before 2025-03-31.basil: the 2023-08-16 shape of spec3.yaml (the emulated accounts' default version);
- from basil on: Charge and PaymentIntent lose `invoice`; a Checkout Session's `shipping_details` moves to
  `collected_information.shipping_details`.
Not covered: breaking changes after clover (dahlia's decimal strings, Checkout's renamed `ui_mode` values)
whose shapes no file here records; such versions answer in the clover shape. Versions before 2022-11-15
(PaymentIntent's embedded `charges` list) answer in the 2023-08-16 shape. Event payloads keep the version
they were created at (`api_version`), as Stripe renders them.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

SPEC_VERSION = "2023-08-16"  # spec3.yaml's version: every emulated account's default
BASIL = date(2025, 3, 31)

# Dated versions before Stripe named its releases (2024-09-30), as its changelog lists them.
_DATED = """
    2011-01-01 2011-06-21 2011-06-28 2011-08-01 2011-09-15 2011-11-17 2012-02-23 2012-03-25 2012-06-18 2012-07-09
    2012-09-24 2012-10-26 2012-11-07 2013-02-11 2013-02-13 2013-07-05 2013-08-12 2013-08-13 2013-10-29 2013-12-03
    2014-01-31 2014-03-13 2014-03-28 2014-05-19 2014-06-13 2014-06-17 2014-07-22 2014-07-26 2014-08-04 2014-08-20
    2014-09-08 2014-10-07 2014-11-05 2014-11-20 2014-12-08 2014-12-17 2014-12-22 2015-01-11 2015-01-26 2015-02-10
    2015-02-16 2015-02-18 2015-03-24 2015-04-07 2015-06-15 2015-07-07 2015-07-13 2015-07-28 2015-08-07 2015-08-19
    2015-09-03 2015-09-08 2015-09-23 2015-10-01 2015-10-12 2015-10-16 2016-02-03 2016-02-19 2016-02-22 2016-02-23
    2016-02-29 2016-03-07 2016-06-15 2016-07-06 2016-10-19 2017-01-27 2017-02-14 2017-04-06 2017-05-25 2017-06-05
    2017-08-15 2017-12-14 2018-01-23 2018-02-05 2018-02-06 2018-02-28 2018-05-21 2018-07-27 2018-08-23 2018-09-06
    2018-09-24 2018-10-31 2018-11-08 2019-02-11 2019-02-19 2019-03-14 2019-05-16 2019-08-14 2019-09-09 2019-10-08
    2019-10-17 2019-11-05 2019-12-03 2020-03-02 2020-08-27 2022-08-01 2022-11-15 2023-08-16 2023-10-16 2024-04-10
    2024-06-20
"""
DATED = frozenset(_DATED.split())
# Named releases: each one's monthly versions where the changelog's list is known here; for the newest ones,
# any version dated from the release's first (the first seen here) up to the next release.
RELEASES: list[tuple[str, date, frozenset[str] | None]] = [
    (
        "acacia",
        date(2024, 9, 30),
        frozenset({"2024-09-30", "2024-10-28", "2024-11-20", "2024-12-18", "2025-01-27", "2025-02-24"}),
    ),
    (
        "basil",
        BASIL,
        frozenset({"2025-03-31", "2025-04-30", "2025-05-28", "2025-06-30", "2025-07-30", "2025-08-27"}),
    ),
    (
        "clover",
        date(2025, 9, 30),
        frozenset({"2025-09-30", "2025-10-29", "2025-11-17", "2025-12-15", "2026-01-28", "2026-02-25"}),
    ),
    ("dahlia", date(2026, 3, 25), None),
    ("endive", date(2026, 10, 28), None),  # the version stripe-python 16.1 pins
]
_FORMAT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?$")


def known(version: str) -> bool:
    """Whether Stripe would take `version` in a Stripe-Version header."""
    match = _FORMAT.match(version)
    if match is None:
        return False
    day_text, name = match.groups()
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        return False
    if name is None:
        return day_text in DATED
    for index, (release, first, monthly) in enumerate(RELEASES):
        if release != name:
            continue
        if monthly is not None:
            return day_text in monthly
        following = RELEASES[index + 1][1] if index + 1 < len(RELEASES) else None
        return day >= first and (following is None or day < following)
    return False


def release_date(version: str) -> date:
    match = _FORMAT.match(version)
    assert match is not None, version
    return date.fromisoformat(match.group(1))


def render(body: Any, version: str) -> Any:
    """`body` (a reply the emulator built in the 2023-08-16 shape) in `version`'s shape; a copy when it changes."""
    if release_date(version) < BASIL:
        return body
    return _basil(copy.deepcopy(body))


def _basil(node: Any) -> Any:
    if isinstance(node, list):
        return [_basil(item) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("object")
    if kind == "event":
        return node  # an event's payload stays in the version it was created at
    out = {key: _basil(value) for key, value in node.items()}
    if kind in ("charge", "payment_intent"):
        out.pop("invoice", None)
    elif kind == "checkout.session" and "shipping_details" in out:
        shipping = out.pop("shipping_details")
        out["collected_information"] = (
            None if shipping is None else {"business_name": None, "individual_name": None, "shipping_details": shipping}
        )
    return out
