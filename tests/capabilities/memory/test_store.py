"""Billing memory's embedders and vector store: one interface, the same bytes on both databases, tenant-scoped."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select

from fieldhub.capabilities.memory import embedders, store
from fieldhub.capabilities.memory.models import MemoryVector
from fieldhub.hub.errors import NeedsReauth
from fieldhub.hub.oauth.env import env_for
from tests.conftest import make_business


async def test_issue22_item2_local_model_embeds_offline_and_finds_the_nearest(session, biz) -> None:
    local = embedders.local()
    texts = ["Water heater installation, 40 gal gas", "Drain cleaning, kitchen sink", "AC tune-up, spring visit"]
    done = await local.embed(texts)
    assert done.vectors.shape == (3, 384) and done.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(done.vectors, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(texts):
        await store.replace_vector(
            session, biz.tenant.id, "invoice", 100 + i, model=local.model, vector=done.vectors[i], text=text,
            tokens=embedders.approx_tokens(text), record_version=1, reason="sent",
        )  # fmt: skip
    await session.commit()
    query = (await local.embed(["what did we charge for a water heater install"], "query")).vectors[0]
    hits = await store.search(session, biz.tenant.id, local.model, query, k=3)
    assert [h.record_id for h in hits][0] == 100 and hits[0].score > hits[1].score
    # The bytes read back are the bytes written, on SQLite and PostgreSQL alike.
    row = await session.scalar(select(MemoryVector).where(MemoryVector.record_id == 100))
    assert row is not None and np.array_equal(store.from_bytes(row.vector, row.dims), done.vectors[0])


async def test_issue22_item1_a_reembed_replaces_and_search_stays_in_its_tenant(session, biz) -> None:
    other = await make_business(session, "b")
    rng = np.random.default_rng(7)
    vectors = embedders.normalized(rng.standard_normal((4, 8)).astype(np.float32))
    for tenant, record, v in ((biz.tenant.id, 1, 0), (biz.tenant.id, 2, 1), (other.tenant.id, 3, 2)):
        await store.replace_vector(
            session, tenant, "invoice", record, model="m", vector=vectors[v], text="", tokens=0, record_version=1,
            reason="sent",
        )  # fmt: skip
    await session.commit()
    assert {h.record_id for h in await store.search(session, biz.tenant.id, "m", vectors[2], k=10)} == {1, 2}
    assert [h.record_id for h in await store.search(session, other.tenant.id, "m", vectors[0], k=10)] == [3]
    # Paying record 1 re-embeds it: one row still, the new vector found, the cached matrix follows.
    await store.replace_vector(
        session, biz.tenant.id, "invoice", 1, model="m", vector=vectors[3], text="", tokens=0, record_version=2,
        reason="paid",
    )  # fmt: skip
    await session.commit()
    assert await store.count(session, biz.tenant.id) == 2
    hits = await store.search(session, biz.tenant.id, "m", vectors[3], k=1)
    assert hits[0].record_id == 1 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert await store.search(session, biz.tenant.id, "other-model", vectors[3]) == []


async def test_issue22_item2_voyage_connection_embeds_through_its_emulator(app, owner, session, biz) -> None:
    env = env_for(app)
    assert isinstance(await embedders.embedder_for(env, biz.tenant.id), embedders.LocalEmbedder)
    r = await owner.submit("/integrations/voyage/api-key", {"api_key": "demo-voyage-api-key"})
    assert r.status_code == 303, r.text
    embedder = await embedders.embedder_for(env, biz.tenant.id)
    assert embedder.model == "voyage-3.5-lite" and embedder.usd_per_million_tokens == Decimal("0.02")
    done = await embedder.embed(["Water heater installation", "Drain cleaning"])
    assert done.vectors.shape == (2, 1024) and done.tokens > 0
    # The key revoked at Voyage: the embedder says the connection needs a new key, never a silent miss.
    env.endpoints.emulators["voyage"].api_keys.clear()  # type: ignore[attr-defined]
    with pytest.raises(NeedsReauth):
        await embedder.embed(["anything"])


def test_issue22_item2_authlib_builds_its_clients_on_httpx_even_with_httpx2_installed() -> None:
    """huggingface_hub 2 and langsmith 0.14+ install httpx2, which Authlib prefers: its OAuth clients would then
    refuse the emulators' httpx transports and raise errors the hub's httpx handlers don't catch."""
    import httpx

    from fieldhub.hub.oauth.client import AsyncOAuth2Client

    assert issubclass(AsyncOAuth2Client, httpx.AsyncClient)
