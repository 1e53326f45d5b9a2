"""The official retell-sdk against the Retell emulator, unmodified but for the host: it makes the LLM, the agent and
the number fieldhub makes, places a call and reads it back (its own response models parse every reply, and every
key the emulator sends is one those models name), and its own verifier accepts the emulator's webhook signature."""

from __future__ import annotations

import json

import httpx
from retell import AsyncRetell, Retell
from retell.types import AgentResponse, LlmResponse, PhoneCallResponse, PhoneNumberResponse

from fieldhub.providers.voice_ai.emulator import sign

KEY = "demo-voice_ai-api-key"


def _known(model: type, reply: dict) -> None:
    unknown = set(reply) - set(model.model_fields)
    assert not unknown, f"{model.__name__} names no {sorted(unknown)}"


async def test_issue21_item4_retell_sdk_drives_the_emulator(app) -> None:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = AsyncRetell(api_key=KEY, base_url="http://testserver/emulators/voice_ai", http_client=http)
    tool = {
        "type": "custom",
        "name": "check_availability",
        "url": "https://hub.example/voice/voice_ai/tools/x",
        "description": "Free times",
        "parameters": {"type": "object", "properties": {}},
        "timeout_ms": 8000,
    }
    llm = await client.llm.create(general_prompt="You answer the phone.", begin_message="Hello!", general_tools=[tool])
    assert isinstance(llm, LlmResponse) and llm.general_tools[0].name == "check_availability"
    agent = await client.agent.create(
        response_engine={"type": "retell-llm", "llm_id": llm.llm_id},
        voice_id="11labs-Adrian",
        agent_name="Front desk",
        webhook_url="https://hub.example/webhooks/voice_ai",
    )
    assert isinstance(agent, AgentResponse) and agent.response_engine.llm_id == llm.llm_id
    assert [a.agent_id for a in (await client.agent.list()).items] == [agent.agent_id]
    mine = [{"agent_id": agent.agent_id, "weight": 1}]
    number = await client.phone_number.create(inbound_agents=mine, outbound_agents=mine)
    assert isinstance(number, PhoneNumberResponse) and number.phone_number.startswith("+1")
    updated = await client.llm.update(llm.llm_id, begin_message="Hi there!")
    assert updated.begin_message == "Hi there!"
    call = await client.call.create_phone_call(from_number=number.phone_number, to_number="+15125550100")
    assert isinstance(call, PhoneCallResponse) and call.direction == "outbound" and call.agent_id == agent.agent_id
    again = await client.call.retrieve(call.call_id)
    assert again.call_id == call.call_id

    # Every reply's keys are ones retell-sdk's models name (they accept extras silently, so this is checked here).
    emu = app.state.endpoints.emulators["voice_ai"]
    _known(LlmResponse, emu.llms[llm.llm_id])
    _known(AgentResponse, emu.agents[agent.agent_id])
    _known(PhoneNumberResponse, emu.phone_numbers[number.phone_number])
    _known(PhoneCallResponse, {k: v for k, v in emu.calls[call.call_id].items()})
    await http.aclose()


def test_issue21_item4_retell_sdk_verifies_the_emulators_signature() -> None:
    body = json.dumps({"event": "call_ended", "call": {"call_id": "call_1"}}, separators=(",", ":"))
    signature = sign(KEY, body.encode())
    assert Retell(api_key=KEY).verify(body, KEY, signature)
    assert not Retell(api_key=KEY).verify(body, "another-key", signature)
    # The research vector: key_test, this body, at 1700000000000.
    vector = sign("key_test", b'{"id":"evt_test","object":"event"}', 1700000000000)
    assert vector == "v=1700000000000,d=dcfebe25aa35f7bb26da73084534268a4044f15036fe62d04c3d31644b5901d4"
