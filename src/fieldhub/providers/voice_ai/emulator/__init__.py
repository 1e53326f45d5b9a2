"""The voice assistant's (Retell AI's) stand-in: Bearer API keys and GET /list-agents."""

from __future__ import annotations

import secrets

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.core import STR, error_shape


class VoiceAIEmulator(Emulator):
    key = "voice_ai"
    error_schema = error_shape({"status": {"const": "error"}, "message": STR})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.api_keys: set[str] = set()
        self.agents = [{"agent_id": "agent_8f2d1c", "agent_name": "Front desk", "voice_id": "11labs-Adrian"}]
        self.app.add_api_route("/list-agents", self.list_agents, methods=["GET"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"status": "error", "message": message}, status_code=status)

    async def list_agents(self, request: Request) -> JSONResponse:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(value.strip(), k) for k in self.api_keys):
            return self.error_response(401, "Invalid API Key")
        return JSONResponse(self.agents)


def create_emulator(config: EmulatorConfig) -> VoiceAIEmulator:
    return VoiceAIEmulator(config)
