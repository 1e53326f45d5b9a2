"""Wave connect hooks: the business the grant reaches, from the GraphQL `businesses` query."""

from __future__ import annotations

from fieldhub.hub.connections.service import AccountInfo
from fieldhub.hub.oauth.flow import ConnectContext

QUERY = "query { user { id defaultEmail } businesses(page: 1, pageSize: 10) { edges { node { id name } } } }"


async def after_connect(ctx: ConnectContext) -> AccountInfo:
    response = await ctx.http.post(
        ctx.api_url(), json={"query": QUERY}, headers={"Authorization": f"Bearer {ctx.access_token}"}
    )
    response.raise_for_status()
    data = response.json()["data"]
    business = data["businesses"]["edges"][0]["node"]
    return AccountInfo(id=business["id"], name=business["name"], details={"email": data["user"]["defaultEmail"]})
