"""Retell AI's stand-in: agents, Retell LLMs with custom tools, phone numbers, phone calls, and calls it plays.

Paths and bodies are Retell's (the official retell-sdk's own paths and response models are what the tests hold
it to): /create-retell-llm, /get-retell-llm/{id}, /update-retell-llm/{id}, /create-agent, /get-agent/{id},
/update-agent/{id}, /list-agents and /v2/list-agents, /create-phone-number, /list-phone-numbers,
/v2/create-phone-call, /v2/get-call/{id}. Errors are `{"status": "error", "message": ...}`.

A call is played by a scripted caller (POST /_emulator/calls, or the page at /_emulator/): the conversation calls
the agent's custom tools exactly as Retell does (POST to the tool's url, body {"call", "name", "args"}, signed
`X-Retell-Signature: v=<ms>,d=<hex HMAC-SHA256(api key, body + ms)>`, the tool's timeout_ms per attempt and
max_retry retries), then sends call_started, call_ended and call_analyzed to the agent's webhook_url, signed the
same way and retried until answered 2xx. Scripts: booking, taken_slot, balance, message, test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import secrets
import time
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.core import CONTROL_PREFIX, STR, error_shape
from fieldhub.hub.emulator.delivery import Outgoing, Sender

RETRY_SCHEDULE = (5.0, 30.0, 120.0)  # emulated seconds between webhook attempts
SCRIPTS = ("booking", "taken_slot", "balance", "message", "test")
DEFAULT_TOOL_TIMEOUT_MS = 120_000  # Retell's default for a custom function
SECONDS_PER_LINE = 5


def sign(key: str, body: bytes, ms: int | None = None) -> str:
    """Retell's signature: v=<unix ms>,d=<hex HMAC-SHA256(key, raw body + ms)>."""
    ms = int(time.time() * 1000) if ms is None else ms
    digest = hmac.new(key.encode(), body + str(ms).encode(), hashlib.sha256).hexdigest()
    return f"v={ms},d={digest}"


def _first(number: dict[str, Any], side: str) -> str:
    """The agent that answers (inbound) or calls (outbound) on a number: the heaviest of its weighted agents."""
    agents = sorted(number.get(side) or [], key=lambda a: -a["weight"])
    return str(agents[0]["agent_id"]) if agents else ""


def _now_ms() -> int:
    return int(time.time() * 1000)


class VoiceAIEmulator(Emulator):
    key = "voice_ai"
    error_schema = error_shape({"status": {"const": "error"}, "message": STR})
    persisted = ("agents", "llms", "phone_numbers", "calls", "owner")

    def __init__(self, config: EmulatorConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.api_keys: set[str] = set()
        self.webhook_transport = webhook_transport
        self.agents: dict[str, dict[str, Any]] = {}
        self.llms: dict[str, dict[str, Any]] = {}
        self.phone_numbers: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.owner: dict[str, str] = {}  # agent, llm or number -> the API key (workspace) that made it
        self.tool_requests: list[dict[str, Any]] = []  # what was sent to tool urls and what came back
        self._sender: Sender | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        add = self.app.add_api_route
        add("/list-agents", self.list_agents, methods=["GET"])
        add("/v2/list-agents", self.list_agents_v2, methods=["POST"])
        add("/create-agent", self.create_agent, methods=["POST"])
        add("/get-agent/{agent_id}", self.get_agent, methods=["GET"])
        add("/update-agent/{agent_id}", self.update_agent, methods=["PATCH"])
        add("/create-retell-llm", self.create_llm, methods=["POST"])
        add("/get-retell-llm/{llm_id}", self.get_llm, methods=["GET"])
        add("/update-retell-llm/{llm_id}", self.update_llm, methods=["PATCH"])
        add("/create-phone-number", self.create_phone_number, methods=["POST"])
        add("/list-phone-numbers", self.list_phone_numbers, methods=["GET"])
        add("/v2/create-phone-call", self.create_phone_call, methods=["POST"])
        add("/v2/get-call/{call_id}", self.get_call, methods=["GET"])
        add(f"{CONTROL_PREFIX}/calls", self.control_call, methods=["POST"])
        add(f"{CONTROL_PREFIX}/calls", self.control_calls, methods=["GET"])
        add(f"{CONTROL_PREFIX}/", self.control_page, methods=["GET"])
        add(f"{CONTROL_PREFIX}/play", self.control_play_form, methods=["POST"])

    # ------------------------------------------------------------------ plumbing

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"status": "error", "message": message}, status_code=status)

    def state(self) -> dict[str, Any]:
        return {"agents": len(self.agents), "llms": len(self.llms), "calls": len(self.calls)}

    def reset(self) -> None:
        super().reset()
        for held in (self.agents, self.llms, self.phone_numbers, self.calls, self.owner):
            held.clear()
        self.tool_requests.clear()

    def _key(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(value, k) for k in self.api_keys):
            return None
        return value

    def _mine(
        self, request: Request, table: dict[str, dict[str, Any]], ident: str
    ) -> tuple[dict | None, Response | None]:
        key = self._key(request)
        if key is None:
            return None, self.error_response(401, "Invalid API Key")
        found = table.get(ident)
        if found is None or self.owner.get(ident) != key:
            return None, self.error_response(404, "Not Found")
        return found, None

    async def _json(self, request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _stamp(self) -> int:
        return int(self.clock.now() * 1000)

    # ------------------------------------------------------------------ agents and LLMs

    async def list_agents(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        return JSONResponse([a for i, a in self.agents.items() if self.owner.get(i) == key])

    async def list_agents_v2(self, request: Request) -> JSONResponse:
        """The paged listing (POST, filters in the body): a summary of each agent."""
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        items = [
            {
                "agent_id": i,
                "agent_name": a.get("agent_name") or "",
                "channel": "voice",
                "is_suspended": False,
                "tags": {},
                "user_modified_timestamp": a["last_modification_timestamp"],
            }
            for i, a in self.agents.items()
            if self.owner.get(i) == key
        ]
        return JSONResponse({"has_more": False, "items": items, "pagination_key": None})

    def _agent(self, agent_id: str, body: dict[str, Any], version: int = 0) -> dict[str, Any]:
        return {
            "agent_id": agent_id,
            "version": version,
            "is_published": False,
            "agent_name": body.get("agent_name"),
            "response_engine": body["response_engine"],
            "voice_id": body["voice_id"],
            "webhook_url": body.get("webhook_url"),
            "language": body.get("language", "en-US"),
            "last_modification_timestamp": self._stamp(),
        }

    async def create_agent(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        body = await self._json(request)
        engine = (body or {}).get("response_engine")
        if not body or not isinstance(engine, dict) or not body.get("voice_id"):
            return self.error_response(400, "response_engine and voice_id are required")
        if engine.get("type") == "retell-llm" and self.owner.get(str(engine.get("llm_id"))) != key:
            return self.error_response(400, "response_engine.llm_id does not exist")
        agent_id = "agent_" + secrets.token_hex(11)
        self.agents[agent_id] = self._agent(agent_id, body)
        self.owner[agent_id] = key
        return JSONResponse(self.agents[agent_id], status_code=201)

    async def get_agent(self, request: Request, agent_id: str) -> Response:
        agent, error = self._mine(request, self.agents, agent_id)
        return error or JSONResponse(agent)

    async def update_agent(self, request: Request, agent_id: str) -> Response:
        agent, error = self._mine(request, self.agents, agent_id)
        if error:
            return error
        assert agent is not None
        body = await self._json(request)
        if body is None:
            return self.error_response(400, "Invalid JSON body")
        for name in ("agent_name", "voice_id", "webhook_url", "language", "response_engine"):
            if name in body:
                agent[name] = body[name]
        agent["last_modification_timestamp"] = self._stamp()
        return JSONResponse(agent)

    def _llm(self, llm_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "llm_id": llm_id,
            "version": 0,
            "is_published": False,
            "model": body.get("model", "gpt-4.1"),
            "general_prompt": body.get("general_prompt"),
            "begin_message": body.get("begin_message"),
            "general_tools": body.get("general_tools") or [],
            "last_modification_timestamp": self._stamp(),
        }

    def _bad_tools(self, tools: Any) -> str:
        if not isinstance(tools, list):
            return "general_tools must be a list"
        for tool in tools:
            if not isinstance(tool, dict) or tool.get("type") not in ("custom", "end_call", "transfer_call"):
                return "each general tool needs a type"
            if tool["type"] == "custom" and not (tool.get("name") and tool.get("url")):
                return "a custom tool needs a name and a url"
        return ""

    async def create_llm(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        body = await self._json(request)
        if body is None:
            return self.error_response(400, "Invalid JSON body")
        problem = self._bad_tools(body.get("general_tools", []))
        if problem:
            return self.error_response(400, problem)
        llm_id = "llm_" + secrets.token_hex(11)
        self.llms[llm_id] = self._llm(llm_id, body)
        self.owner[llm_id] = key
        return JSONResponse(self.llms[llm_id], status_code=201)

    async def get_llm(self, request: Request, llm_id: str) -> Response:
        llm, error = self._mine(request, self.llms, llm_id)
        return error or JSONResponse(llm)

    async def update_llm(self, request: Request, llm_id: str) -> Response:
        llm, error = self._mine(request, self.llms, llm_id)
        if error:
            return error
        assert llm is not None
        body = await self._json(request)
        if body is None:
            return self.error_response(400, "Invalid JSON body")
        problem = self._bad_tools(body.get("general_tools", []))
        if problem:
            return self.error_response(400, problem)
        for name in ("general_prompt", "begin_message", "general_tools", "model"):
            if name in body:
                llm[name] = body[name]
        llm["last_modification_timestamp"] = self._stamp()
        return JSONResponse(llm)

    # ------------------------------------------------------------------ numbers and calls

    async def create_phone_number(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        body = await self._json(request) or {}
        area = int(body.get("area_code") or 512)
        number = f"+1{area}555{self.random.randint(1000, 9999)}"
        while number in self.phone_numbers:
            number = f"+1{area}555{self.random.randint(1000, 9999)}"
        agents = {}
        for side in ("inbound_agents", "outbound_agents"):
            given = body.get(side) or []
            if not isinstance(given, list) or any(
                not isinstance(a, dict) or self.owner.get(str(a.get("agent_id"))) != key for a in given
            ):
                return self.error_response(400, f"{side} must name agents of this workspace")
            if given and abs(sum(float(a.get("weight", 0)) for a in given) - 1) > 1e-6:
                return self.error_response(400, f"the weights of {side} must add up to 1")
            agents[side] = [{"agent_id": a["agent_id"], "weight": float(a["weight"])} for a in given]
        self.phone_numbers[number] = {
            "phone_number": number,
            "phone_number_type": "retell-twilio",
            "phone_number_pretty": f"+1 ({area}) 555-{number[-4:]}",
            "area_code": area,
            "nickname": body.get("nickname"),
            **agents,
            "last_modification_timestamp": self._stamp(),
        }
        self.owner[number] = key
        return JSONResponse(self.phone_numbers[number], status_code=201)

    async def list_phone_numbers(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        return JSONResponse([n for i, n in self.phone_numbers.items() if self.owner.get(i) == key])

    def _call(self, agent: dict[str, Any], direction: str, from_number: str, to_number: str) -> dict[str, Any]:
        call_id = "call_" + secrets.token_hex(14)
        call = {
            "call_type": "phone_call",
            "call_id": call_id,
            "agent_id": agent["agent_id"],
            "agent_version": agent.get("version", 0),
            "agent_name": agent.get("agent_name"),
            "call_status": "registered",
            "direction": direction,
            "from_number": from_number,
            "to_number": to_number,
            "metadata": {},
        }
        self.calls[call_id] = call
        return call

    async def create_phone_call(self, request: Request) -> JSONResponse:
        key = self._key(request)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        body = await self._json(request) or {}
        number = self.phone_numbers.get(str(body.get("from_number")))
        if number is None or self.owner.get(number["phone_number"]) != key:
            return self.error_response(400, "from_number is not a number of this workspace")
        to_number = str(body.get("to_number") or "")
        if not to_number.startswith("+") or not to_number[1:].isdigit():
            return self.error_response(400, "to_number must be in E.164 format")
        agent = self.agents.get(str(body.get("override_agent_id") or _first(number, "outbound_agents")))
        if agent is None:
            return self.error_response(400, "no agent to place the call with")
        call = self._call(agent, "outbound", number["phone_number"], to_number)
        self._spawn(self.play(call, "test", {}))
        return JSONResponse(dict(call), status_code=201)

    async def get_call(self, request: Request, call_id: str) -> Response:
        key = self._key(request)
        call = self.calls.get(call_id)
        if key is None:
            return self.error_response(401, "Invalid API Key")
        if call is None or self.owner.get(call["agent_id"]) != key:
            return self.error_response(404, "Not Found")
        return JSONResponse(call)

    # ------------------------------------------------------------------ playing a call

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for calls being played and their webhooks (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._sender is not None:
            await self._sender.idle()

    def sender(self) -> Sender:
        if self._sender is None or self._sender.transport is not self.webhook_transport:
            self._sender = Sender(self, schedule=RETRY_SCHEDULE, transport=self.webhook_transport)
        return self._sender

    def _webhook(self, call: dict[str, Any], event: str) -> None:
        agent = self.agents.get(call["agent_id"], {})
        url, key = agent.get("webhook_url"), self.owner.get(call["agent_id"], "")
        if not url:
            return
        body = json.dumps({"event": event, "call": call}, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "x-retell-signature": sign(key, body)}
        self.sender().enqueue(Outgoing(url=url, body=body, headers=headers, kind=event))

    def _tool(self, call: dict[str, Any], name: str) -> dict[str, Any] | None:
        agent = self.agents.get(call["agent_id"], {})
        engine = agent.get("response_engine") or {}
        llm = self.llms.get(str(engine.get("llm_id")), {})
        return next(
            (t for t in llm.get("general_tools", []) if t.get("type") == "custom" and t.get("name") == name), None
        )

    async def tool(self, call: dict[str, Any], name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Call the agent's custom tool as Retell does; what it answered (parsed), or {"error": ...}."""
        spec = self._tool(call, name)
        if spec is None:
            return {"error": f"the agent has no tool {name}"}
        key = self.owner.get(call["agent_id"], "")
        public = {k: v for k, v in call.items() if k not in ("transcript",)}
        body = json.dumps({"call": public, "name": name, "args": args}, separators=(",", ":")).encode()
        timeout = float(spec.get("timeout_ms") or DEFAULT_TOOL_TIMEOUT_MS) / 1000
        tries = 1 + int(spec.get("max_retry") or 0)
        entry: dict[str, Any] = {"call_id": call["call_id"], "name": name, "args": args, "attempts": []}
        self.tool_requests.append(entry)
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=timeout) as client:
            for attempt in range(tries):
                headers = {"content-type": "application/json", "x-retell-signature": sign(key, body)}
                started = time.perf_counter()
                try:
                    reply = await client.post(spec["url"], content=body, headers=headers)
                    entry["attempts"].append(
                        {"status": reply.status_code, "ms": round((time.perf_counter() - started) * 1000, 1)}
                    )
                    if reply.status_code < 300:
                        try:
                            entry["result"] = reply.json()
                        except ValueError:
                            entry["result"] = {"text": reply.text}
                        return dict(entry["result"])
                except httpx.HTTPError as exc:
                    entry["attempts"].append({"error": type(exc).__name__})
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        entry["result"] = {"error": "the tool did not answer"}
        return dict(entry["result"])

    async def play(self, call: dict[str, Any], script: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one scripted conversation on `call`; the transcript and tool results land on the call."""
        agent = self.agents.get(call["agent_id"], {})
        llm = self.llms.get(str((agent.get("response_engine") or {}).get("llm_id")), {})
        lines: list[str] = []
        results: list[dict[str, Any]] = []
        start = _now_ms()
        call.update(call_status="ongoing", start_timestamp=start)
        self._webhook(call, "call_started")

        def say(who: str, text: str) -> None:
            lines.append(f"{who}: {text}")

        async def tool(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await self.tool(call, name, args)
            results.append({"name": name, "args": args, "result": result})
            return result

        say("Agent", llm.get("begin_message") or "Hello, how can I help?")
        caller = params.get("name") or "Dana Whitfield"
        service = params.get("service") or "Water heater repair"
        address = params.get("address") or "14 Oak St, Austin, TX"
        if script in ("booking", "taken_slot"):
            day = params.get("day") or ""
            part = params.get("part_of_day") or "morning"
            say("User", f"Hi, this is {caller}. I need {service.lower()}. Anything {day or 'this week'} {part}?")
            found = await tool(
                "check_availability",
                {"service": service, "date_from": day, "date_to": day, "part_of_day": part, "address": address},
            )
            slots = found.get("slots") or []
            say("Agent", found.get("say") or "Let me check.")
            wanted = params.get("slot") if script == "taken_slot" else (slots[0]["start"] if slots else None)
            if wanted:
                say("User", "That works for me.")
                args = {"name": caller, "phone": call["from_number"], "address": address, "service": service}
                booked = await tool("book_job", {**args, "slot": wanted, "notes": params.get("notes", "")})
                say("Agent", booked.get("say", ""))
                if not booked.get("booked") and booked.get("next_slots"):
                    say("User", "Then the next one, please.")
                    booked = await tool("book_job", {**args, "slot": booked["next_slots"][0]["start"]})
                    say("Agent", booked.get("say", ""))
        elif script == "balance":
            say("User", "Hi, how much do I owe you?")
            args = {
                "invoice_number": params.get("invoice_number", ""),
                "send_pay_link": bool(params.get("send_pay_link")),
            }
            owed = await tool("invoice_balance", args)
            say("Agent", owed.get("say", ""))
        elif script == "message":
            reason = params.get("reason") or "Water is leaking under the kitchen sink."
            say("User", f"Can someone call me back? {reason}")
            taken = await tool(
                "take_message",
                {
                    "name": caller,
                    "phone": call["from_number"],
                    "reason": reason,
                    "urgency": params.get("urgency", "normal"),
                },
            )
            say("Agent", taken.get("say", ""))
        say("Agent", "Thanks for calling. Goodbye!")
        # A scripted call runs in milliseconds; it reports the length the conversation would take (about five
        # seconds a line), so the call log reads as a real one would.
        duration = max(_now_ms() - start, SECONDS_PER_LINE * 1000 * len(lines))
        call.update(
            call_status="ended",
            end_timestamp=start + duration,
            duration_ms=duration,
            transcript="\n".join(lines),
            recording_url=f"https://dxc03zgurdly9.cloudfront.net/{call['call_id']}/recording.wav",
            disconnection_reason="agent_hangup",
        )
        self._webhook(call, "call_ended")
        call["call_analysis"] = {
            "call_summary": f"{caller} called ({script}).",
            "user_sentiment": "Positive",
            "call_successful": all("error" not in r["result"] for r in results),
            "in_voicemail": False,
        }
        self._webhook(call, "call_analyzed")
        self.save_state()
        return {"call": call, "tools": results}

    # ------------------------------------------------------------------ controls

    def _inbound(self, params: dict[str, Any]) -> dict[str, Any] | JSONResponse:
        script = params.get("script", "booking")
        if script not in SCRIPTS:
            return self.error_response(400, f"script must be one of {', '.join(SCRIPTS)}")
        number = self.phone_numbers.get(str(params.get("to_number") or "")) or next(
            iter(self.phone_numbers.values()), None
        )
        agent_id = _first(number, "inbound_agents") if number else ""
        if number is None or agent_id not in self.agents:
            return self.error_response(400, "no phone number with an inbound agent: connect Voice AI first")
        caller = str(params.get("from_number") or "+15125550147")
        return self._call(self.agents[agent_id], "inbound", caller, number["phone_number"])

    async def control_call(self, request: Request) -> JSONResponse:
        params = await self._json(request) or {}
        call = self._inbound(params)
        if isinstance(call, JSONResponse):
            return call
        played = await self.play(call, params.get("script", "booking"), params)
        return JSONResponse(played)

    async def control_calls(self) -> JSONResponse:
        return JSONResponse({"calls": list(self.calls.values()), "tool_requests": self.tool_requests})

    async def control_page(self) -> HTMLResponse:
        rows = "".join(
            f"<tr><td>{html.escape(c['call_id'])}</td><td>{html.escape(c['from_number'])}</td>"
            f"<td>{html.escape(c['call_status'])}</td></tr>"
            for c in list(self.calls.values())[-20:]
        )
        options = "".join(f"<option>{s}</option>" for s in SCRIPTS if s != "test")
        return HTMLResponse(
            "<!doctype html><meta name=viewport content='width=device-width'><title>Retell emulator</title>"
            "<body style='font-family:system-ui;max-width:640px;margin:2rem auto;padding:0 1rem'>"
            "<h1>Retell emulator: play a call</h1><form method=post action='play'>"
            f"<p><label>Script <select name=script>{options}</select></label></p>"
            "<p><label>Caller's number <input name=from_number value='+15125550147'></label></p>"
            "<p><label>Day (YYYY-MM-DD) <input name=day></label></p>"
            "<p><button>Call the business</button></p></form>"
            f"<h2>Recent calls</h2><table>{rows}</table></body>"
        )

    async def control_play_form(self, request: Request) -> Response:
        form = dict((await request.form()).items())
        call = self._inbound(form)
        if isinstance(call, JSONResponse):
            return call
        await self.play(call, str(form.get("script", "booking")), {k: str(v) for k, v in form.items()})
        return await self.control_page()


def create_emulator(config: EmulatorConfig) -> VoiceAIEmulator:
    return VoiceAIEmulator(config)
