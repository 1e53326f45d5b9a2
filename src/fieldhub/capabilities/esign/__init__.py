"""E-signatures: an estimate sent for the customer's signature, tracked to signed (approved) or declined.

Written once for every signing service. The capability owns the flow (who may send, one envelope per send,
status from webhooks with a poll behind them, approve or decline the estimate, keep the signed PDF and the
certificate, void when the estimate changes), its pages and its periodic task. A provider folder implements
`SigningService` in `providers/<key>/esign.py` and adds only what is true of that one service (DocuSign's
envelopes and Connect, Dropbox Sign's signature requests and callbacks); its `webhooks.py` turns the service's
events into `Update`s and hands them to `service.apply_update`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fieldhub.capabilities.esign.models import EnvelopeStatus
    from fieldhub.hub.connections.models import Connection
    from fieldhub.hub.http import ProviderClient


@dataclass(frozen=True)
class Anchor:
    """Where the signature goes: the anchor text in the PDF (DocuSign's anchorString) and where it is drawn
    (page from 0, points from the left and from the bottom) for services that place fields by position."""

    text: str
    page: int
    x: float
    y: float


@dataclass(frozen=True)
class Request:
    """What goes out: the estimate's PDF, the signer, the message, and how to find this send again."""

    send_key: str  # unique per send: DocuSign's transactionId, Dropbox Sign's metadata
    title: str
    subject: str
    message: str
    pdf: bytes
    file_name: str
    signer_name: str
    signer_email: str
    embedded: bool  # signed on this device through the service's embedded view; no email to the signer
    signer_key: str  # the signer's id at our end (DocuSign's clientUserId)
    signature: Anchor
    date: Anchor | None
    webhook_url: str
    return_url: str  # where an embedded signer's browser comes back to (a service may need it at creation)
    app_id: str  # our app's id at the service (Dropbox Sign's client_id, which embedded requests need)


@dataclass(frozen=True)
class Sent:
    remote_id: str


@dataclass(frozen=True)
class Update:
    """How a request stands at the service, from a webhook or a poll. Times are aware UTC (None: not yet)."""

    remote_id: str
    status: EnvelopeStatus
    at: datetime | None = None
    delivered_at: datetime | None = None
    signed_at: datetime | None = None
    declined_at: datetime | None = None
    voided_at: datetime | None = None
    decline_reason: str = ""
    void_reason: str = ""


class SigningService(Protocol):
    """What `providers/<key>/esign.py` defines at module level (the capability imports it by name)."""

    # What the pages say the service does today (hub/features.py reads it from the module, never a list).
    DOES: tuple[str, ...]

    async def send(self, client: ProviderClient, conn: Connection, request: Request) -> Sent: ...

    async def find(self, client: ProviderClient, conn: Connection, send_key: str) -> Sent | None:
        """The request an earlier send made under this key, if it went through (its reply may have been lost)."""

    async def signing_url(
        self, client: ProviderClient, conn: Connection, remote_id: str, request: Request, return_url: str
    ) -> str:
        """Where the signer signs on this device now (embedded), coming back to `return_url`."""

    async def status(self, client: ProviderClient, conn: Connection, remote_id: str) -> Update: ...

    async def void(self, client: ProviderClient, conn: Connection, remote_id: str, reason: str) -> None: ...

    async def documents(self, client: ProviderClient, conn: Connection, remote_id: str) -> tuple[bytes, bytes]:
        """The signed PDF and the certificate of completion (or audit trail), once signed."""
