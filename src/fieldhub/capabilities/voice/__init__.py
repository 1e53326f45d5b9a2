"""The voice capability: an AI phone assistant that answers the business's calls, written once for any provider.

What every voice provider shares lives here: the assistant's four tools (assistant.py: real free slots, booking,
balances for the caller whose number matches, messages), the signed tool endpoint they are called on, the call log
and its page (models.py, service.py, routes.py), and the agent's set-up read from the business (its name, hours,
services). A provider folder supplies only `voice.py` (protocol.py's VoiceApi: create or update its agent, place a
test call, check and read a tool request, read a call) and its `webhooks.py`, which hands finished calls to
`service.record_call`.
"""
