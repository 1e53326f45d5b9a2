"""The four kinds of provider failure; each one drives what sync does next (DESIGN §3)."""

from __future__ import annotations

from fieldhub.log import scrub_text


class ProviderError(Exception):
    """Something a provider call could not do. `kind` names the behaviour it asks for.

    Reasons are shown to business owners and written to the ledger, so every text passes through the
    log redactor: a token that was ever decrypted cannot come back out through an error message.
    """

    kind = "error"

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = scrub_text(reason)
        # The HTTP status that led here, when there was one (None for network failures).
        self.status = status
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"


class RetryLater(ProviderError):
    """Transient: network, timeout, 5xx, 429. Back off (at least `retry_after` seconds when given) and try again."""

    kind = "retry_later"

    def __init__(self, reason: str, retry_after: float | None = None, *, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after


class NoSlot(RetryLater):
    """The shared rate limiter had no slot in `bucket` within the wait allowed: nothing was sent."""

    def __init__(self, reason: str, retry_after: float | None = None, *, bucket: str = "") -> None:
        super().__init__(reason, retry_after)
        self.bucket = bucket


class NeedsReauth(ProviderError):
    """The grant is gone (invalid_grant, revoked, 401 after a refresh): pause the connection, ask to Reconnect."""

    kind = "needs_reauth"


class Rejected(ProviderError):
    """This one record can't go, and retrying won't help; the rest of the run goes on.

    `code` is the provider's own error code (kept for support and for mapping), `reason` says what is
    wrong in plain words and `fix` says what the business owner can do about it.
    """

    kind = "rejected"

    def __init__(self, code: str, reason: str, fix: str = "", *, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.code = code
        self.fix = scrub_text(fix)

    def __str__(self) -> str:
        return f"{self.reason} ({self.code})" + (f" — {self.fix}" if self.fix else "")


class NotEntitled(ProviderError):
    """The account's plan or the granted scopes don't include this: skip it and say so."""

    kind = "not_entitled"
