"""QuickBooks Online's Fault bodies, its times and its JSON numbers, as the real API writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

# QBO writes MetaData times and the envelope `time` in Pacific time, whatever the company's zone
# (research/accounting-anchors.md §3.8).
PACIFIC = ZoneInfo("America/Los_Angeles")


class QBOFault(Exception):
    """One error the API answers with `{"Fault": {"Error": [...], "type": ...}}`."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        element: str = "",
        *,
        status: int = 400,
        kind: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.kind = kind

    def error(self) -> dict[str, str]:
        return {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}

    def fault(self) -> dict[str, Any]:
        return {"Error": [self.error()], "type": self.kind}


def not_found(detail: str = "", element: str = "") -> QBOFault:
    return QBOFault(
        "610",
        "Object Not Found",
        detail
        or "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts.",
        element=element,
    )


def required(element: str) -> QBOFault:
    return QBOFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element=element,
    )


def business(detail: str, element: str = "") -> QBOFault:
    return QBOFault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element=element,
    )


def duplicate_name(kind: str, other_id: str) -> QBOFault:
    return QBOFault(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Another {kind}, vendor or employee is already using this name. "
        f"Please use a different name. The {kind} ID is : {other_id}",
    )


def stale(entity: str, object_id: str) -> QBOFault:
    return QBOFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and QuickBooks were working on this at the same time. "
        f"QuickBooks finished before you did, so your work was not saved. ({entity} {object_id})",
    )


def unsupported(detail: str) -> QBOFault:
    return QBOFault("500", "Unsupported Operation", detail)


def invalid_query(detail: str) -> QBOFault:
    return QBOFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def auth_failed_body(detail: str, now: float) -> dict[str, Any]:
    """The 401 body: unlike every other fault it is lower-case and typed AUTHENTICATION (facts §1.11)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": int(now * 1000),
        "status": None,
        "cdcresponse": [],
    }


def throttle_fault() -> QBOFault:
    # Not in the copied docs; every integration that handles it quotes this message and code 3001.
    return QBOFault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
        status=429,
        kind="SERVICE",
    )


def system_fault(status: int) -> QBOFault:
    return QBOFault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data.",
        status=status,
        kind="SystemFault",
    )


# --- times ---------------------------------------------------------------------------------------
def qbo_time(ts: float, millis: bool = False) -> str:
    """`2015-07-23T11:04:15-07:00` (MetaData) or with milliseconds (the envelope `time`)."""
    moment = datetime.fromtimestamp(ts, PACIFIC)
    if millis:
        return moment.isoformat(timespec="milliseconds")
    return moment.isoformat(timespec="seconds")


def qbo_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, PACIFIC).date().isoformat()


def parse_time(text: str) -> float | None:
    """A QBO date-time or date; without an offset it is Pacific time, as QBO reads it."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        value += "T00:00:00"
    value = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PACIFIC)
    return moment.astimezone(UTC).timestamp()
