"""Domain events the e-signature capability listens to (registered at start, like the hub's own listeners)."""

from __future__ import annotations

from fieldhub.capabilities.esign.service import on_domain_event

__all__ = ["on_domain_event"]
