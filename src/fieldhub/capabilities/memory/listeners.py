"""Billing memory's domain-event listener, subscribed at start by the app and by `fieldhub worker` (found by folder):
a sent invoice or estimate, or a payment, queues the record for embedding (queue.py), when the flag is on."""

from __future__ import annotations

from fieldhub.capabilities.memory.queue import on_domain_event

__all__ = ["on_domain_event"]
