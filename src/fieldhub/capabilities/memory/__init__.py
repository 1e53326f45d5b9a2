"""Billing memory: a business's sent invoices and estimates, embedded, so "what did we charge for X" is answered
from its own history (issue 22).

- `embedders.py`: the one small interface (`Embedder`) and its two implementations: the local model shipped in a
  PyPI package (all-MiniLM-L6-v2 on torch's CPU build; the default, no network) and Voyage AI (the tenant's API
  key, through the `voyage` provider's connection).
- `models.py`: `memory_vectors` (one float32 vector per record and model, the same bytes on SQLite and
  PostgreSQL) and `memory_jobs` (the durable queue of records to embed).
- `store.py`: writing a record's vector (a re-embed replaces it) and exact cosine search with numpy over one
  business's vectors, kept in memory per process and refreshed by what changed.

Every read and write names the tenant: no business ever sees another's records.
"""
