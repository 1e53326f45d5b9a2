"""The phone assistant end to end: an emulated Retell call books a truly free slot, balances only for the right
caller, and forged, stale or replayed tool calls and webhooks are refused and write nothing (issue 21)."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from fieldhub.capabilities.voice.models import VoiceCall, VoiceToolCall
from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices.service import create_invoice, send_invoice
from fieldhub.core.jobs.models import Job
from fieldhub.core.jobs.service import create_job, create_time_block
from fieldhub.hub.connections.models import Connection
from fieldhub.hub.notify.models import Notification
from fieldhub.providers.voice_ai.emulator import sign

KEY = "demo-voice_ai-api-key"
CALLER = "+15125550147"
ZONE = ZoneInfo("America/Chicago")


def next_tuesday() -> date:
    today = datetime.now(ZONE).date()
    return today + timedelta(days=(1 - today.weekday()) % 7 or 7)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def _connect(app, owner, session):  # noqa: ANN001, ANN202
    emu = app.state.endpoints.emulators["voice_ai"]
    emu.webhook_transport = httpx.ASGITransport(app=app)  # tool calls and webhooks reach this app in-process
    r = await owner.submit("/integrations/voice_ai/api-key", {"api_key": KEY})
    assert r.status_code == 303, r.text
    conn = await session.scalar(select(Connection).where(Connection.provider == "voice_ai"))
    await session.refresh(conn)
    return emu, conn


async def _count(session, model, *where) -> int:  # noqa: ANN001
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_issue21_item1_connect_sets_up_agent_number_and_tools(app, owner, session) -> None:
    emu, conn = await _connect(app, owner, session)
    agent = conn.settings["agent"]
    assert conn.account_id == agent["agent_id"] and agent["phone_number"].startswith("+1")
    llm = emu.llms[agent["llm_id"]]
    assert {t["name"] for t in llm["general_tools"]} == {
        "check_availability",
        "book_job",
        "invoice_balance",
        "take_message",
    }
    assert all(t["url"].startswith("http://testserver/voice/voice_ai/tools/") for t in llm["general_tools"])
    assert "Business a" in llm["begin_message"] and "Mon, Tue, Wed, Thu, Fri 08:00–17:00" in llm["general_prompt"]
    assert emu.agents[agent["agent_id"]]["webhook_url"] == "http://testserver/webhooks/voice_ai"
    page = await owner.get("/settings/integrations/voice_ai")
    assert agent["phone_number"] in page.text and "Call me to test" in page.text
    # Changing the hours updates the same agent at Retell, not a second one.
    r = await owner.submit(f"/voice/{conn.id}/settings", {"opens": "07:00", "closes": "15:00", "days": ["0", "2"]})
    assert r.status_code == 303 and len(emu.agents) == 1
    assert "Mon, Wed 07:00–15:00" in emu.llms[agent["llm_id"]]["general_prompt"]
    # Call me: an outbound test call from the assistant's number, logged like any other.
    r = await owner.submit(f"/voice/{conn.id}/call-me", {"to_number": "(512) 555-0100"})
    assert r.status_code == 303
    await emu.idle()
    (call,) = [c for c in emu.calls.values() if c["direction"] == "outbound"]
    assert call["to_number"] == "+15125550100" and call["from_number"] == agent["phone_number"]


async def test_issue21_item2_tuesday_morning_call_books_the_only_free_slot(app, owner, session, biz) -> None:
    emu, conn = await _connect(app, owner, session)
    tuesday = next_tuesday()
    known = await create_customer(session, biz.tenant.id, {"display_name": "Pat Known", "phone": "(512) 555-0199"})
    await create_job(
        session,
        biz.tenant.id,
        {
            "customer_id": known.id,
            "title": "Boiler service",
            "scheduled_start": local(tuesday, 8),
            "scheduled_end": local(tuesday, 9),
            "technician_ids": [biz.tech.id],
        },
    )
    # Busy time from a connected calendar (the calendar issue's Block Time Slots): the same time_blocks table.
    await create_time_block(
        session, biz.tenant.id, {"user_id": biz.tech.id, "starts_at": local(tuesday, 12), "ends_at": local(tuesday, 13)}
    )
    await session.commit()

    r = await owner.post(
        "/emulators/voice_ai/_emulator/calls",
        json={
            "script": "booking",
            "from_number": CALLER,
            "day": tuesday.isoformat(),
            "service": "Water heater repair",
            "name": "Dana Whitfield",
            "address": "14 Oak St, Austin, TX",
        },
    )
    assert r.status_code == 200, r.text
    played = r.json()
    await emu.idle()
    availability, booking = played["tools"]
    # 8:00 and 9:00 clash with the job (and its 30-minute travel buffer), 11:00 with the calendar block.
    starts = [datetime.fromisoformat(s["start"]) for s in availability["result"]["slots"]]
    assert starts == [datetime(tuesday.year, tuesday.month, tuesday.day, 10, tzinfo=ZONE)]
    assert booking["result"]["booked"] is True
    job = await session.get(Job, booking["result"]["job_id"])
    assert job.scheduled_start == local(tuesday, 10) and [t.id for t in job.technicians] == [biz.tech.id]
    assert job.customer.display_name == "Dana Whitfield" and job.customer.phone == CALLER

    week = await owner.get(f"/schedule?week={tuesday.isoformat()}")
    assert "Water heater repair" in week.text
    call = await session.scalar(select(VoiceCall).where(VoiceCall.remote_id == played["call"]["call_id"]))
    await session.refresh(call)
    assert call.outcome == "booked" and call.job_id == job.id and call.status == "ended"
    page = await owner.get(f"/voice/calls/{call.id}")
    assert "Water heater repair" in page.text and f'href="/schedule/jobs/{job.id}"' in page.text
    assert "User: Hi, this is Dana Whitfield" in page.text
    log = await owner.get("/voice")
    assert "Booked" in log.text and 'data-booked="1"' in log.text


async def test_issue21_item2_taken_slot_is_refused_and_the_next_offered(app, owner, session, biz) -> None:
    emu, _ = await _connect(app, owner, session)
    tuesday = next_tuesday()
    other = await create_customer(session, biz.tenant.id, {"display_name": "Early Bird"})
    await create_job(
        session,
        biz.tenant.id,
        {
            "customer_id": other.id,
            "title": "Taken meanwhile",
            "scheduled_start": local(tuesday, 9),
            "scheduled_end": local(tuesday, 11),
            "technician_ids": [biz.tech.id],
        },
    )
    await session.commit()
    slot = datetime(tuesday.year, tuesday.month, tuesday.day, 9, tzinfo=ZONE).isoformat()
    r = await owner.post(
        "/emulators/voice_ai/_emulator/calls",
        json={"script": "taken_slot", "from_number": CALLER, "day": tuesday.isoformat(), "slot": slot},
    )
    _, refused, booked = r.json()["tools"]
    assert refused["result"]["booked"] is False and refused["result"]["reason"] == "taken"
    assert booked["result"]["booked"] is True
    assert datetime.fromisoformat(booked["result"]["start"]) == datetime.fromisoformat(
        refused["result"]["next_slots"][0]["start"]
    )
    assert await _count(session, Job, Job.tenant_id == biz.tenant.id) == 2


async def test_issue21_balance_only_for_the_callers_own_number(app, owner, session, biz) -> None:
    emu, _ = await _connect(app, owner, session)
    customer = await create_customer(
        session, biz.tenant.id, {"display_name": "Dana Whitfield", "phone": "512-555-0147", "email": "dana@example.com"}
    )
    invoice = await create_invoice(
        session,
        biz.tenant.id,
        {"customer_id": customer.id, "lines": [{"description": "Repair", "unit_price": "245.50"}]},
    )
    await send_invoice(session, biz.tenant.id, invoice.id)
    await session.commit()

    wrong = await owner.post(
        "/emulators/voice_ai/_emulator/calls",
        json={"script": "balance", "from_number": "+15125550999", "invoice_number": invoice.number},
    )
    (result,) = [t["result"] for t in wrong.json()["tools"]]
    assert result["found"] is False and "245" not in json.dumps(result) and invoice.number not in json.dumps(result)

    right = await owner.post("/emulators/voice_ai/_emulator/calls", json={"script": "balance", "from_number": CALLER})
    (result,) = [t["result"] for t in right.json()["tools"]]
    assert result["total_due"] == "245.50" and result["invoices"][0]["number"] == invoice.number
    await emu.idle()
    outcomes = sorted((await session.scalars(select(VoiceCall.outcome))).all())
    assert outcomes == ["balance", "no_action"]


async def test_issue21_message_notifies_the_owner(app, owner, session, biz) -> None:
    emu, _ = await _connect(app, owner, session)
    await owner.post(
        "/emulators/voice_ai/_emulator/calls",
        json={"script": "message", "from_number": CALLER, "name": "Dana", "urgency": "urgent", "reason": "Burst pipe"},
    )
    note = await session.scalar(select(Notification).where(Notification.kind == "voice.message"))
    assert note is not None and note.title == "URGENT: Phone message from Dana" and "Burst pipe" in note.body


def _tool_body(conn: Connection, name: str, args: dict, call_id: str = "call_forged") -> bytes:
    call = {"call_id": call_id, "agent_id": conn.account_id, "from_number": CALLER, "to_number": "+15125550100"}
    return json.dumps({"call": call, "name": name, "args": args}).encode()


@pytest.mark.parametrize("case", ["wrong_key", "stale", "no_signature", "unknown_agent"])
async def test_issue21_forged_or_stale_tool_calls_are_refused_and_write_nothing(app, owner, session, biz, case) -> None:
    _, conn = await _connect(app, owner, session)
    args = {
        "name": "Mallory",
        "address": "1 Fake St",
        "service": "Free stuff",
        "slot": local(next_tuesday(), 10).isoformat(),
    }
    body = _tool_body(conn, "book_job", args)
    headers = {"content-type": "application/json"}
    if case == "wrong_key":
        headers["x-retell-signature"] = sign("not-the-key", body)
    elif case == "stale":
        headers["x-retell-signature"] = sign(KEY, body, int(time.time() * 1000) - 6 * 60 * 1000)
    elif case == "unknown_agent":
        body = body.replace(conn.account_id.encode(), b"agent_nobody")
        headers["x-retell-signature"] = sign(KEY, body)
    r = await owner.post("/voice/voice_ai/tools/book_job", content=body, headers=headers)
    assert r.status_code == 401 and r.json() == {"detail": "The signature is missing, stale or wrong."}
    assert await _count(session, VoiceToolCall) == 0 and await _count(session, Job) == 0


async def test_issue21_replayed_tool_call_is_refused_and_a_retry_books_once(app, owner, session, biz) -> None:
    _, conn = await _connect(app, owner, session)
    args = {"name": "Dana", "address": "14 Oak St", "service": "Drain", "slot": local(next_tuesday(), 14).isoformat()}
    body = _tool_body(conn, "book_job", args, call_id="call_once")
    signed = {"content-type": "application/json", "x-retell-signature": sign(KEY, body)}
    first = await owner.post("/voice/voice_ai/tools/book_job", content=body, headers=signed)
    assert first.status_code == 200 and first.json()["booked"] is True
    replay = await owner.post("/voice/voice_ai/tools/book_job", content=body, headers=signed)
    assert replay.status_code == 409
    # Retell retrying a lost answer signs anew: the same answer, not a second job.
    again = {"content-type": "application/json", "x-retell-signature": sign(KEY, body, int(time.time() * 1000) + 1)}
    retry = await owner.post("/voice/voice_ai/tools/book_job", content=body, headers=again)
    assert retry.status_code == 200 and retry.json()["job_id"] == first.json()["job_id"]
    assert await _count(session, Job) == 1 and await _count(session, VoiceToolCall) == 2


async def test_issue21_forged_or_stale_call_webhooks_are_refused(app, owner, session) -> None:
    _, conn = await _connect(app, owner, session)
    call = {"call_id": "call_x", "agent_id": conn.account_id, "from_number": CALLER, "transcript": "Agent: hi"}
    body = json.dumps({"event": "call_ended", "call": call}).encode()
    for signature in (sign("wrong", body), sign(KEY, body, int(time.time() * 1000) - 10 * 60 * 1000), ""):
        r = await owner.post("/webhooks/voice_ai", content=body, headers={"x-retell-signature": signature})
        assert r.status_code == 401
    assert await _count(session, VoiceCall) == 0
    r = await owner.post("/webhooks/voice_ai", content=body, headers={"x-retell-signature": sign(KEY, body)})
    assert r.status_code == 200
