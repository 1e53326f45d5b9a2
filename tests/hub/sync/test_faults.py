"""A backfill under the issue's fault mix ends exactly once, and no request beats a 429's Retry-After.

The existing suite test (tests/providers/quickbooks/test_sync.py) runs the mix with a fake sleep; this
one sleeps for real, so the emulator's request log can show the waits: after a 429 answered with
Retry-After, the realm gets no request until that many seconds have passed. bench/faults.py is the
full size (5,000 records).
"""

from __future__ import annotations

from bench import _faultkit as kit
from fieldhub.hub.emulator.core import FaultRule
from tests.conftest import Business
from tests.hub.sync.conftest import QBOSetup

RECORDS = 63  # 3 items + 20 × (customer, invoice, payment)


async def test_faults_end_exactly_once_and_retry_after_is_obeyed(session, biz: Business, qbo: QBOSetup) -> None:
    made = await kit.make_records(session, biz.tenant.id, RECORDS)
    await session.commit()
    emulator = qbo.emulator
    first = emulator.requests[-1].seq
    kit.inject_faults(emulator, seed=11, timeout_delay=1.0)
    # At this size the 5 % may draw no 429 at all: three certain ones, on a batch of invoices and of payments.
    emulator.faults[:0] = [
        FaultRule(kind="rate_limit", path="/batch$", body='"Invoice"', count=1, retry_after=1.0),
        FaultRule(kind="rate_limit", path="/batch$", body='"Payment"', count=2, retry_after=1.0),
    ]
    exchanges = kit.ExchangeLog.around_quickbooks(qbo.env, emulator)
    await kit.drain(qbo.env, qbo.connection_id, client_options={"timeout": 0.5, "transport": exchanges})

    sent = [r for r in emulator.requests if r.seq > first]
    faults = kit.fault_counts(sent)
    assert faults["status"] and faults["rate_limit"] >= 3, faults  # the mix really happened
    assert all(r.retry_after == "1" for r in sent if r.fault == "rate_limit")
    assert exchanges.violations() == []
    # At this size every entity is one batch, so no request is out beside another to cross a 429: the
    # provider's view must be clean too.
    assert kit.retry_after_violations(sent) == []
    found = await kit.audit(qbo.env.sessionmaker, emulator, qbo.connection_id, qbo.realm)
    assert found.records == made and found.clean, (found.figures(), found.details[:10], faults)


def test_the_log_check_sees_a_request_that_did_not_wait() -> None:
    from fieldhub.hub.emulator.core import LoggedRequest

    realm = "/v3/company/123/payment"
    log = [
        LoggedRequest(1, "POST", realm, "", {}, "", status=429, started=10.0, finished=10.1, retry_after="2"),
        LoggedRequest(2, "POST", realm, "", {}, "", status=200, started=10.05, finished=10.3),  # in flight already
        LoggedRequest(3, "POST", realm, "", {}, "", status=200, started=11.0, finished=11.2),  # too early
        LoggedRequest(4, "POST", "/v3/company/456/payment", "", {}, "", status=200, started=11.0, finished=11.1),
        LoggedRequest(5, "POST", realm, "", {}, "", status=200, started=12.2, finished=12.3),  # waited
    ]
    assert kit.retry_after_violations(log) == [(1, 3)]
    assert kit.retry_after_violations(log, scale=0.1) == []  # a scaled clock: 2 real s are 0.2 emulated


def test_the_clients_log_tells_a_request_sent_after_a_429_from_one_already_on_its_way() -> None:
    E = kit.Exchange
    log = kit.ExchangeLog(inner=None, clock=None)  # type: ignore[arg-type]
    log.exchanges = [
        E("123", sent=10.0, received=10.1, status=429, retry_after="2"),
        E("123", sent=10.05, received=10.3, status=200, retry_after=""),  # on its way when the 429 came back
        E("123", sent=11.0, received=11.2, status=200, retry_after=""),  # sent inside the wait
        E("456", sent=11.0, received=11.1, status=200, retry_after=""),  # another realm
        E("123", sent=12.2, received=12.3, status=200, retry_after=""),  # waited
    ]
    assert log.violations() == [(0, 2)]
    assert log.violations(scale=0.1) == []  # a scaled clock: 2 real s are 0.2 emulated


async def test_a_retry_after_the_client_gave_up_on_pauses_the_whole_connection(session, biz: Business, qbo: QBOSetup):
    import asyncio
    from datetime import timedelta

    from sqlalchemy import select

    from fieldhub.db import utcnow
    from fieldhub.hub.sync.models import LedgerRow, LedgerState, RunStatus

    await kit.make_records(session, biz.tenant.id, 9)  # 3 items + 2 × (customer, invoice, payment)
    # Four 429s in a row on the payments' batch: the client's inline retries (fake sleeps here) run out.
    qbo.emulator.faults.append(FaultRule(kind="rate_limit", path="/batch$", body='"Payment"', count=4, retry_after=2.0))
    run = await qbo.sync()
    assert run.status == RunStatus.PARTIAL and any(e["code"] == "throttled" for e in run.errors), run.errors
    throttled = [r for r in qbo.emulator.requests if r.status == 429]
    assert len(throttled) == 4 and throttled[-1] is qbo.emulator.requests[-1]  # nothing went after the last 429
    pending = list(
        await session.scalars(
            select(LedgerRow).where(
                LedgerRow.connection_id == qbo.connection_id, LedgerRow.state == LedgerState.PENDING
            )
        )
    )
    await session.commit()
    assert {r.entity for r in pending} == {"payment"} and len(pending) == 2
    assert all(r.next_attempt_at >= utcnow() + timedelta(seconds=1) for r in pending)  # the 2 s are in the ledger
    assert await qbo.sync() is None  # a run now finds nothing due
    await asyncio.sleep(2.1)
    assert (await qbo.sync()).created == 2
    # (The client's inline retries above slept fake seconds; what followed the last 429 waited for real.)
    late = [v for v in kit.retry_after_violations(list(qbo.emulator.requests)) if v[0] == throttled[-1].seq]
    assert late == []
