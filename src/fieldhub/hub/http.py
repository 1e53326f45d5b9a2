"""The one HTTP client every provider goes through: auth, shared limits, retries, error kinds, redacted logs.

A provider's code says what to send; this says how: auth headers on every call, one refresh and retry
on 401, a slot from the shared limiter per attempt, Retry-After honoured, transient failures retried
with exponential backoff and full jitter, and every final failure turned into one of the four kinds
in fieldhub.hub.errors so the sync engine knows what to do next.

A request that may already have been processed is only retried when doing it twice is harmless: an
idempotent method, an idempotency key, or a failure that proves the provider did nothing (it refused
the connection or answered 429). Otherwise RetryLater goes back to the engine, which looks for the
record before creating it again.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import random
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import certifi
import httpx

from fieldhub import __version__
from fieldhub.hub import metrics
from fieldhub.hub.errors import NeedsReauth, NotEntitled, ProviderError, Rejected, RetryLater
from fieldhub.hub.ratelimit import Limit, RateLimiter
from fieldhub.log import get_logger

log = get_logger("fieldhub.http")


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process, shared by every client: building one loads the CA bundle (about
    40 ms of CPU here), which a client per sync run or token refresh would otherwise pay each time."""
    return ssl.create_default_context(cafile=certifi.where())


# httpcore looks for `sniffio` on every request; without it installed, each failed import walks
# sys.path again (about a millisecond of CPU per request, a fifth of a payment's cost in the
# overhead benchmark). Recording the absence once makes every later attempt fail at once.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures where the request never reached the provider: always safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
DEFAULT_FIX = "Check the record's details in fieldhub and save it again; if it keeps failing, contact support."


class ApiConfig(Protocol):
    """What the client needs from a provider's `[api]` section (hub.spec.ApiSpec satisfies it)."""

    @property
    def base_url(self) -> str: ...
    @property
    def rate_limit_per_minute(self) -> int | None: ...
    @property
    def concurrency(self) -> int | None: ...
    @property
    def retry_statuses(self) -> Sequence[int]: ...


@dataclass(frozen=True)
class Api:
    """A plain ApiConfig, for tests and for providers that build one in code."""

    base_url: str
    rate_limit_per_minute: int | None = None
    concurrency: int | None = None
    retry_statuses: Sequence[int] = (429, 500, 502, 503, 504)


class Auth(Protocol):
    """How a connection signs its requests. `refresh` gets a new access token or raises NeedsReauth."""

    async def headers(self) -> Mapping[str, str]: ...
    async def refresh(self) -> None: ...


# A provider's hook: turn a response into its error kind (with the provider's own message, code and a
# fix in plain words), or None to let the defaults decide. It sees every response, 2xx included,
# because some APIs report failures inside a 200.
Classify = Callable[[httpx.Response], ProviderError | None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    # A provider asking for a longer pause than this gets it from the engine, not from a sleeping worker.
    max_inline_wait: float = 60.0


@dataclass
class _Attempt:
    response: httpx.Response | None = None
    error: ProviderError | None = None
    # Could the provider have acted on it? Then only a repeatable request may be sent again.
    maybe_processed: bool = True
    # Worth retrying now (timeouts, 429, the provider's retryable statuses) rather than on the engine's next pass.
    inline: bool = False
    # Not sent: a Retry-After came back for the bucket while this request waited for its slot.
    held: bool = False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def provider_message(response: httpx.Response, limit: int = 300) -> str:
    """The human part of an error body, wherever the common API styles put it."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit] if text and "<" not in text[:1] else ""
    for _ in range(3):  # {"error": {"message": …}} and similar nestings
        if isinstance(body, list) and body:
            body = body[0]
        if not isinstance(body, dict):
            break
        for key in ("message", "error_description", "detail", "title", "Message", "Detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()[:limit]
        nested = next((body[k] for k in ("error", "errors", "fault", "Fault") if k in body), None)
        if isinstance(nested, str):
            return nested.strip()[:limit]
        body = nested
    return ""


class ProviderClient:
    def __init__(
        self,
        config: ApiConfig,
        auth: Auth | None = None,
        limiter: RateLimiter | None = None,
        *,
        provider: str,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str | None = None,
        classify: Classify | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        idempotency_header: str = "Idempotency-Key",
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.config = config
        self.auth = auth
        self.limiter = limiter
        self.classify = classify
        self.retry = retry or RetryPolicy()
        self.idempotency_header = idempotency_header
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        # bucket -> clock time until which a Retry-After holds every request of this client to it back: a
        # provider throttles the account, so a request another one sends meanwhile must wait it out too.
        self._held_until: dict[str, float] = {}
        self._client = httpx.AsyncClient(
            base_url=base_url or config.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            verify=ssl_context(),
            # Who is calling, for the provider's support and for the emulator's log: one process, one sender
            # (tests tell workers apart by it). The process id, not the host name: that is not theirs to know.
            headers={"User-Agent": f"fieldhub/{__version__} (process {os.getpid()})"},
        )

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        bucket: str = "",
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool | None = None,
        batch: bool = False,
        max_wait: float | None = None,
    ) -> httpx.Response:
        """The provider's successful response, or one of the four error kinds.

        `max_wait`: how long to wait for the shared limiter's slot (its own default when None); past it,
        NoSlot (a RetryLater) says nothing was sent.

        `bucket` is what the provider meters on (a realm, a tenant id). `idempotent=True` marks a POST
        that is safe to repeat (a query sent as POST); by default only idempotent methods and requests
        carrying `idempotency_key` are repeated after a failure the provider might have acted on.
        `batch=True` marks a batch request: it also takes a slot of the provider's `batch_per_minute`.
        """
        method = method.upper()
        repeatable = idempotent if idempotent is not None else (method in IDEMPOTENT_METHODS or bool(idempotency_key))
        failures = 0
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            waited = await self._wait_out_hold(bucket)
            outcome = await self._attempt(
                method,
                path,
                bucket,
                attempt,
                json,
                data,
                content,
                params,
                headers,
                idempotency_key,
                batch,
                waited,
                max_wait,
            )
            if outcome.held:
                continue
            response = outcome.response
            if response is not None and response.status_code == 401 and self.auth is not None and not refreshed:
                # Access tokens expire early and get revoked; one refresh tells a stale token from a dead grant.
                refreshed = True
                metrics.TOKEN_REFRESHES.labels(self.provider).inc()
                log.info("provider.http.refresh", provider=self.provider, attempt=attempt)
                await self.auth.refresh()
                continue
            if outcome.error is None:
                assert response is not None
                return response
            error = outcome.error
            failures += 1
            retry = (
                isinstance(error, RetryLater)
                and outcome.inline
                and failures < self.retry.max_attempts
                and (repeatable or not outcome.maybe_processed)
            )
            if not retry:
                raise error
            assert isinstance(error, RetryLater)
            if error.retry_after is not None:
                delay = error.retry_after
            else:
                # Full jitter: waiters spread over the whole interval instead of returning in a herd.
                delay = self._rng.uniform(0, min(self.retry.max_delay, self.retry.base_delay * 2 ** (failures - 1)))
            if delay > self.retry.max_inline_wait:
                raise error
            log.info(
                "provider.http.retry",
                provider=self.provider,
                attempt=attempt,
                delay=round(delay, 3),
                kind=error.kind,
                status=error.status,
            )
            if not error.retry_after:  # a Retry-After is the bucket's hold (_attempt), waited out at the loop's top
                await self._sleep(delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        bucket: str,
        attempt: int,
        json: Any,
        data: Any,
        content: bytes | str | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        idempotency_key: str | None,
        batch: bool = False,
        waited: float = 0.0,
        max_wait: float | None = None,
    ) -> _Attempt:
        send_headers = dict(headers or {})
        if idempotency_key:
            send_headers[self.idempotency_header] = idempotency_key
        batch_limit = getattr(self.config, "batch_per_minute", None) if batch else None
        # A batch request counts against both limits (QBO: 40 batches and 500 requests a minute per realm),
        # taken together in one transaction.
        slot: AbstractAsyncContextManager[object] = (
            self.limiter.slot(
                self.provider,
                bucket,
                per_minute=self.config.rate_limit_per_minute,
                concurrency=self.config.concurrency,
                max_wait=max_wait,
                also=(Limit(f"{bucket}:batch", batch_limit),) if batch_limit else (),
            )
            if self.limiter is not None
            else nullcontext()
        )
        async with slot:
            if self._held_until.get(bucket, 0.0) > max(self._clock(), waited):
                return _Attempt(held=True)  # throttled while it waited for the slot: wait it out, then again
            if self.auth is not None:
                send_headers.update(await self.auth.headers())
            request = self._client.build_request(
                method, path, json=json, data=data, content=content, params=params, headers=send_headers
            )
            # The path only: query strings carry API keys and search terms.
            where = {"provider": self.provider, "method": method, "path": request.url.path, "attempt": attempt}
            started = self._clock()
            try:
                response = await self._client.send(request)
            except httpx.TransportError as exc:
                label = "timeout" if isinstance(exc, httpx.TimeoutException) else "network"
                metrics.PROVIDER_CALLS.labels(self.provider, label).inc()
                log.warning("provider.http", **where, status=None, ms=self._ms(started), error=type(exc).__name__)
                what = "did not answer in time" if label == "timeout" else "could not be reached"
                return _Attempt(
                    error=RetryLater(f"{self.provider} {what}; fieldhub will try again"),
                    maybe_processed=not isinstance(exc, _NOT_SENT),
                    inline=True,
                )
            error = self._error_for(response)
            if isinstance(error, RetryLater) and error.retry_after:
                # Held from the moment the reply is in, before the slot is given back: that is an await, and
                # another request of this client must not leave meanwhile.
                until = self._clock() + error.retry_after
                self._held_until[bucket] = max(self._held_until.get(bucket, until), until)
        status = response.status_code
        metrics.PROVIDER_CALLS.labels(self.provider, str(status)).inc()
        if status == 429:
            metrics.PROVIDER_429.labels(self.provider).inc()
        level = log.info if error is None else log.warning
        level("provider.http", **where, status=status, ms=self._ms(started), **({"kind": error.kind} if error else {}))
        return _Attempt(
            response=response,
            error=error,
            # 429 means the provider refused to act on it at all, so even a plain POST can be sent again.
            maybe_processed=status != 429,
            inline=status == 429 or status in self.config.retry_statuses,
        )

    async def _wait_out_hold(self, bucket: str) -> float:
        """Wait until a Retry-After this client got for `bucket` (for this request or another) has run out, or,
        if longer than a worker should sleep, RetryLater for the engine to come back then; the hold's end, 0 if
        none. Waits once: a hold set meanwhile is caught by the check after the slot."""
        until = self._held_until.get(bucket)
        if until is None:
            return 0.0
        wait = until - self._clock()
        if wait <= 0:
            self._held_until.pop(bucket, None)
            return 0.0
        if wait > self.retry.max_inline_wait:
            raise RetryLater(f"{self.provider} asked fieldhub to slow down", retry_after=wait, status=429)
        await self._sleep(wait)
        return until

    def _ms(self, started: float) -> float:
        return round((self._clock() - started) * 1000, 1)

    def _error_for(self, response: httpx.Response) -> ProviderError | None:
        if self.classify is not None:
            hooked = self.classify(response)
            if hooked is not None:
                if hooked.status is None:
                    hooked.status = response.status_code
                return hooked
        status = response.status_code
        if status < 400:
            return None
        message = provider_message(response)
        said = f": {message}" if message else ""
        if status == 401:
            return NeedsReauth(f"{self.provider} no longer accepts fieldhub's access{said}", status=status)
        if status == 403:
            return NotEntitled(f"{self.provider} says this account or plan doesn't allow it{said}", status=status)
        if status == 429 or status in self.config.retry_statuses or status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"))
            if status == 429:
                reason = f"{self.provider} asked fieldhub to slow down"
            else:
                reason = f"{self.provider} had a temporary problem ({status})"
            return RetryLater(reason, retry_after=wait, status=status)
        return Rejected(f"http_{status}", f"{self.provider} refused this{said}", DEFAULT_FIX, status=status)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)
