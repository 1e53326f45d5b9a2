"""Envelopes: one row per estimate sent for signature, the capability's ledger of what went out and how it stands."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from fieldhub.core.tenancy import TenantRecord
from fieldhub.db import Base, UTCDateTime


class EnvelopeStatus(StrEnum):
    SENDING = "sending"  # the row is written, the provider not yet answered (or its answer was lost)
    SENT = "sent"
    DELIVERED = "delivered"  # the signer opened it
    SIGNED = "signed"  # every signer signed: the estimate is approved
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"
    FAILED = "failed"  # the provider refused it: nothing was sent


OPEN = (EnvelopeStatus.SENDING, EnvelopeStatus.SENT, EnvelopeStatus.DELIVERED)
# How far along each status is: a late or replayed event never moves an envelope back.
RANK = {
    EnvelopeStatus.SENDING: 0,
    EnvelopeStatus.FAILED: 0,
    EnvelopeStatus.SENT: 1,
    EnvelopeStatus.DELIVERED: 2,
    EnvelopeStatus.SIGNED: 3,
    EnvelopeStatus.DECLINED: 3,
    EnvelopeStatus.VOIDED: 3,
    EnvelopeStatus.EXPIRED: 3,
}


class SignatureEnvelope(TenantRecord, Base):
    """An estimate's request for signature at one provider.

    `send_key` is unique: "est-<id>-<n>", n counting the estimate's closed envelopes. Two sends of the same
    estimate at once compute the same key and the second insert fails, so one envelope goes out; the
    provider's own lookup (DocuSign's transactionId, Dropbox Sign's metadata) finds a send whose reply was lost.
    """

    __tablename__ = "signature_envelopes"
    __table_args__ = (
        Index("ix_signature_envelopes_estimate", "tenant_id", "estimate_id"),
        Index("ix_signature_envelopes_remote", "provider", "remote_id"),
        Index("ix_signature_envelopes_open", "status", "checked_at"),
    )

    estimate_id: Mapped[int] = mapped_column(ForeignKey("estimates.id", ondelete="CASCADE"))
    estimate_version: Mapped[int] = mapped_column(Integer)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    send_key: Mapped[str] = mapped_column(String(80), unique=True)
    remote_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[EnvelopeStatus] = mapped_column(String(12), default=EnvelopeStatus.SENDING)
    signer_name: Mapped[str] = mapped_column(String(200))
    signer_email: Mapped[str] = mapped_column(String(254))
    message: Mapped[str] = mapped_column(Text, default="")
    embedded: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    void_reason: Mapped[str] = mapped_column(Text, default="")
    # The estimate changed after sending: void this envelope at the provider (the periodic task does it).
    void_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    # When the provider last told us about it (a webhook or a poll): the poll asks only about quiet ones.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signed_pdf: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
    certificate_pdf: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
