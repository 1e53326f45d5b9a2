"""Voyage AI as billing memory's embedder (capabilities/memory/embedders.py's `Embedder`): POST /v1/embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import httpx
import numpy as np

from fieldhub.capabilities.memory.embedders import Embedded, Kind, normalized
from fieldhub.hub.errors import NeedsReauth, Rejected, RetryLater
from fieldhub.hub.oauth.env import OAuthEnv

KEY = "voyage"
VOYAGE_MODEL = "voyage-3.5-lite"
# Voyage's published price for voyage-3.5-lite: $0.02 per million tokens (the first 200 million free per account,
# which the estimate leaves out: it is the price once they are used). docs.voyageai.com/docs/pricing.
VOYAGE_USD_PER_MILLION = Decimal("0.02")
VOYAGE_DIMENSIONS = 1024
VOYAGE_BATCH = 128  # texts per request (Voyage takes up to 1,000; 128 keeps a request small)


class VoyageEmbedder:
    model = VOYAGE_MODEL
    dimensions = VOYAGE_DIMENSIONS
    usd_per_million_tokens = VOYAGE_USD_PER_MILLION
    texts_per_second = 400.0  # 128 per request at ~0.3 s a request (Voyage's 2,000 requests a minute is far off)

    def __init__(self, env: OAuthEnv, connection_id: int) -> None:
        self.env = env
        self.connection_id = connection_id

    async def embed(self, texts: Sequence[str], kind: Kind = "document") -> Embedded:
        from fieldhub.hub import registry
        from fieldhub.hub.oauth.tokens import get_access_token

        spec = registry.get(KEY)
        key = await get_access_token(self.env, self.connection_id)
        url = self.env.endpoints.url(KEY, spec.api.base_url + "/embeddings")
        out: list[np.ndarray] = []
        tokens = 0
        async with self.env.endpoints.client(KEY, timeout=60.0) as http:
            for start in range(0, len(texts), VOYAGE_BATCH):
                batch = list(texts[start : start + VOYAGE_BATCH])
                body = {"input": batch, "model": self.model, "input_type": kind, "truncation": True}
                try:
                    response = await http.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
                except httpx.HTTPError as e:
                    raise RetryLater(f"Voyage AI could not be reached ({type(e).__name__})") from None
                raise_for_voyage(response)
                data = response.json()
                rows = sorted(data["data"], key=lambda d: d["index"])
                out.append(np.asarray([r["embedding"] for r in rows], dtype=np.float32))
                tokens += int(data.get("usage", {}).get("total_tokens", 0))
        return Embedded(normalized(np.vstack(out)), tokens)


def raise_for_voyage(response: httpx.Response) -> None:
    """Voyage's error body is {"detail": "..."}: 401 a refused key, 429 the rate limit, 5xx its trouble."""
    if response.status_code < 400:
        return
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = response.text[:200]
    status = response.status_code
    if status in (401, 403):
        raise NeedsReauth(f"Voyage AI refused the API key: {detail}", status=status)
    if status == 429 or status >= 500:
        retry = response.headers.get("retry-after")
        raise RetryLater(
            f"Voyage AI had a temporary problem ({status}): {detail}",
            float(retry) if retry and retry.isdigit() else None,
            status=status,
        )
    raise Rejected(str(status), f"Voyage AI refused the request ({status}): {detail}", status=status)


def create_embedder(env: OAuthEnv, connection_id: int) -> VoyageEmbedder:
    return VoyageEmbedder(env, connection_id)
