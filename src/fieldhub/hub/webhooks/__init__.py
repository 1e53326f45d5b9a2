"""Inbound webhooks for every provider: signature first, a durable inbox unique on event id, processing from it."""
