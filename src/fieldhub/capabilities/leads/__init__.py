"""Leads: requests for work from a marketplace (Thumbtack), kept in one Leads inbox whatever the provider.

A leads provider's folder has `leads.py` with:
- `async def setup(env, session, connection) -> str`: after connect, make the provider send its leads here (a
  webhook registered with credentials fieldhub generates and keeps encrypted); says what was done, in words;
- `async def send_message(env, connection, lead_remote_id, text) -> IncomingMessage`: a reply, as the provider
  recorded it (its id, so the provider's own report of it later is the same message).
Its `webhooks.py` turns each delivery into `IncomingLead` / `IncomingMessage` and hands them to `service.receive_*`,
which are order-independent and idempotent: a message before its lead, or either twice, leaves one of each.
"""
