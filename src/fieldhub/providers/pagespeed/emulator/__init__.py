"""PageSpeed Insights' and the Chrome UX Report's stand-in (crux.py): the API key in the `key` query parameter.

Scores and Core Web Vitals are fixed, plausible numbers derived from the URL, so a page shows the same
figures every time.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from fieldhub.hub.emulator import Clock, Emulator, EmulatorConfig
from fieldhub.hub.emulator.google import GOOGLE_ERROR_SCHEMA, google_error, google_route_error


class PageSpeedEmulator(Emulator):
    key = "pagespeed"
    error_schema = GOOGLE_ERROR_SCHEMA

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(clock=Clock(config.time_scale), seed=config.seed)
        self.api_keys: set[str] = set()
        self.app.add_api_route("/pagespeedonline/v5/runPagespeed", self.run, methods=["GET"])
        from fieldhub.providers.pagespeed.emulator import crux

        self.crux = crux.install(self)

    def check_key(self, request: Request) -> JSONResponse | None:
        """Google checks the key before anything else: API_KEY_INVALID for one it doesn't know."""
        key = request.query_params.get("key", "")
        return None if any(secrets.compare_digest(key, k) for k in self.api_keys) else self.key_invalid()

    def snapshot(self) -> dict[str, Any]:
        return super().snapshot() | {"crux": self.crux.sites}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        if "crux" in state:
            self.crux.sites = state["crux"]

    def error_response(self, status: int, message: str, request: Request | None = None) -> JSONResponse:
        return google_error(status, message)

    def key_invalid(self) -> JSONResponse:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "pagespeedonline.googleapis.com"},
        }
        return google_error(400, "API key not valid. Please pass a valid API key.", details=[info])

    def route_error(self, status: int, request: Request) -> Response:
        return google_route_error(status)

    async def run(self, request: Request) -> JSONResponse:
        key = request.query_params.get("key", "")
        if not any(secrets.compare_digest(key, k) for k in self.api_keys):
            return self.key_invalid()
        url = request.query_params.get("url", "")
        if not url:
            return self.error_response(400, "Invalid value for field 'url'")
        seed = int(hashlib.sha256(url.encode()).hexdigest()[:6], 16)
        lcp = 1500 + seed % 2000
        metrics = {
            "LARGEST_CONTENTFUL_PAINT_MS": {"percentile": lcp, "category": "FAST" if lcp <= 2500 else "AVERAGE"},
            "INTERACTION_TO_NEXT_PAINT": {"percentile": 120 + seed % 200, "category": "FAST"},
            "CUMULATIVE_LAYOUT_SHIFT_SCORE": {"percentile": seed % 20, "category": "FAST"},
        }
        return JSONResponse(
            {
                "id": url,
                "loadingExperience": {"id": url, "metrics": metrics, "overall_category": "FAST"},
                "lighthouseResult": {"categories": {"performance": {"score": round(0.6 + (seed % 40) / 100, 2)}}},
            }
        )


def create_emulator(config: EmulatorConfig) -> PageSpeedEmulator:
    return PageSpeedEmulator(config)
