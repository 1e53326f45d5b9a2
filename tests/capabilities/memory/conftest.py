"""Billing memory's fixtures: the app with FIELDHUB_RAG_BILLING_EMBED_ENABLED=true."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fieldhub.main import create_app


@pytest.fixture
async def flagged(settings) -> AsyncIterator:
    application = create_app(settings.model_copy(update={"rag_billing_embed_enabled": True}))
    async with application.router.lifespan_context(application):
        yield application
