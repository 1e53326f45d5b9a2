"""The emulator framework: each provider's local stand-in is built on these pieces (DESIGN.md §5).

An emulator is a stateful ASGI app that speaks a provider's real API. The framework gives every one
of them the same control surface under `/_emulator/` (request log, faults, token expiry and
revocation, state, reset), a clock with a time scale, fault injection, published rate limits, and an
OAuth 2.0 authorization server whose quirks (rotation, grace, PKCE, callback parameters, error
bodies) each provider sets to its own real rules.
"""

from fieldhub.hub.emulator.core import Clock, Emulator, EmulatorConfig, FaultRule, RateRule
from fieldhub.hub.emulator.oauth import Account, OAuthRules, OAuthServer

__all__ = ["Account", "Clock", "Emulator", "EmulatorConfig", "FaultRule", "OAuthRules", "OAuthServer", "RateRule"]
