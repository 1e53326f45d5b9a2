"""Voyage AI's stand-in: POST /v1/embeddings with Bearer API keys, Voyage's reply and error bodies.

Vectors are deterministic (a hash of each text's words, so texts sharing words are near), unit length, of the
asked dimension; usage.total_tokens counts word pieces the way billing memory estimates them. The official
`voyageai` client drives it unmodified but for its base URL (tests/providers/voyage/test_sdk.py).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig, RateRule
from fieldhub.hub.emulator.core import STR, error_shape

MODELS = {  # model: (default dimensions, allowed dimensions, context tokens)
    "voyage-3.5-lite": (1024, (256, 512, 1024, 2048), 32_000),
    "voyage-3.5": (1024, (256, 512, 1024, 2048), 32_000),
    "voyage-3-large": (1024, (256, 512, 1024, 2048), 32_000),
    "voyage-code-3": (1024, (256, 512, 1024, 2048), 32_000),
    "voyage-finance-2": (1024, (1024,), 32_000),
    "voyage-law-2": (1024, (1024,), 16_000),
}
MAX_TEXTS = 1000
MAX_BATCH_TOKENS = 1_000_000  # voyage-3.5-lite's per-request total
_WORD = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> int:
    return sum(max(1, math.ceil(len(w) / 4)) if w[0].isalnum() else 1 for w in _WORD.findall(text))


def vector(text: str, dims: int) -> list[float]:
    values = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()) or [text]:
        digest = hashlib.blake2b(word.encode(), digest_size=16).digest()
        for i in range(4):
            slot = int.from_bytes(digest[i * 4 : i * 4 + 3], "little") % dims
            values[slot] += 1.0 if digest[i * 4 + 3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


class VoyageEmulator(Emulator):
    key = "voyage"
    error_schema = error_shape({"detail": STR})

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.api_keys: set[str] = set()
        self.billed_tokens = 0
        # The basic tier for voyage-3.5-lite: 2,000 requests a minute per key.
        self.rate_rules.append(RateRule("requests", limit=2000, window=60.0, applies=self._bucket))
        self.app.add_api_route("/v1/embeddings", self.embeddings, methods=["POST"])

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    def route_error(self, status: int, request: Request) -> JSONResponse:
        words = {404: "The requested URL was not found on this server.", 405: "This method is not allowed here."}
        return self.error_response(status, words.get(status, "Not Found"), request)

    def _bucket(self, request: Request) -> str | None:
        return request.headers.get("authorization", "") or None

    def state(self) -> dict[str, Any]:
        return {"billed_tokens": self.billed_tokens}

    async def embeddings(self, request: Request) -> JSONResponse:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(value.strip(), k) for k in self.api_keys):
            return self.error_response(401, "Provided API key is invalid.")
        try:
            body = await request.json()
        except ValueError:
            return self.error_response(422, "Request body is not valid JSON.")
        if not isinstance(body, dict):
            return self.error_response(422, "Request body must be a JSON object.")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        model = body.get("model")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self.error_response(400, "Field 'input' must be a string or a non-empty list of strings.")
        if len(texts) > MAX_TEXTS:
            return self.error_response(
                400, f"The length of the input list is {len(texts)}, exceeding the limit of {MAX_TEXTS}."
            )
        if model not in MODELS:
            return self.error_response(400, f"Model {model} is not supported. Supported models are {sorted(MODELS)}.")
        input_type = body.get("input_type")
        if input_type not in (None, "query", "document"):
            return self.error_response(400, "Field 'input_type' must be one of None, 'query', 'document'.")
        default, allowed, context = MODELS[model]
        dims = body.get("output_dimension") or default
        if dims not in allowed:
            return self.error_response(400, f"Output dimension {dims} is not supported for {model}.")
        counts = [tokens(t) for t in texts]
        if body.get("truncation") is False and max(counts) > context:
            return self.error_response(400, f"Input text exceeds the context length of {context} tokens.")
        counts = [min(c, context) for c in counts]
        if sum(counts) > MAX_BATCH_TOKENS:
            return self.error_response(400, f"The total number of tokens exceeds the limit of {MAX_BATCH_TOKENS}.")
        prefix = {"query": "Represent the query for retrieving supporting documents: ", "document": ""}
        data = [
            {"object": "embedding", "embedding": vector(prefix.get(input_type or "", "") + t, dims), "index": i}
            for i, t in enumerate(texts)
        ]
        self.billed_tokens += sum(counts)
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": {"total_tokens": sum(counts)}})


def create_emulator(config: EmulatorConfig) -> VoyageEmulator:
    return VoyageEmulator(config)
