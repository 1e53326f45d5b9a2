"""ProviderSpec: the schema of a provider's provider.toml, validated strictly and frozen once loaded."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_ICON = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class SpecError(ValueError):
    """A provider.toml (or family toml) that cannot be used; the message names the file and the field."""


class Capability(StrEnum):
    ACCOUNTING = "accounting"
    PAYMENTS = "payments"
    CALENDAR = "calendar"
    ESIGN = "esign"
    LEADS = "leads"
    REVIEWS = "reviews"
    SEO = "seo"
    VOICE = "voice"
    MEMORY = "memory"  # billing memory: the embedding providers (capabilities/memory)


class SettingsCategory(StrEnum):
    """Providers that are set up outside the Integrations hub, in another Settings category."""

    BILLING = "billing"


class AuthMode(StrEnum):
    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    NONE = "none"


class Direction(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    BOTH = "both"


class ConflictPolicy(StrEnum):
    REMOTE_WINS = "remote_wins"
    LOCAL_WINS = "local_wins"
    NEWEST_WINS = "newest_wins"


class CursorKind(StrEnum):
    TIMESTAMP = "timestamp"  # a "changed since" time (QBO LastUpdatedTime, Xero If-Modified-Since)
    TOKEN = "token"  # an opaque token the provider hands back (sync token, delta link)
    PAGE = "page"  # no change feed: page through everything


class WebhookScheme(StrEnum):
    """How a provider proves a webhook came from it; the provider's webhooks.py does the checking."""

    HMAC_SHA256_BASE64 = "hmac_sha256_base64"  # base64(HMAC-SHA256(secret, raw body)) in a header
    HMAC_SHA256_BASE64_FORM = "hmac_sha256_base64_form"  # same, over the JSON of a form-encoded body
    SIGNED_TIMESTAMP_HEX = "signed_timestamp_hex"  # "t=<s>,v1=<hex HMAC of 't.body'>", with a tolerance
    SIGNED_TIMESTAMP_MS_HEX = "signed_timestamp_ms_hex"  # "v=<ms>,d=<hex HMAC of body+ms>"
    EVENT_HASH = "event_hash"  # hex HMAC of fields inside the body, keyed by the API key
    SHARED_TOKEN = "shared_token"  # a header echoes a token we chose when subscribing
    CLIENT_STATE = "client_state"  # the body echoes a secret we chose when subscribing
    BASIC_AUTH = "basic_auth"  # HTTP Basic credentials we chose when subscribing


def https_url(value: str) -> str:
    """Real endpoints are https; emulators are reached by overriding base URLs at runtime, not in toml."""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"must be an https:// URL, got {value!r}")
    return value


def hex_colour(value: str) -> str:
    if not _HEX.match(value):
        raise ValueError(f"must be a #rgb or #rrggbb colour, got {value!r}")
    return value.upper()


def icon_name(value: str) -> str:
    if not _ICON.match(value):
        raise ValueError(f"must be a Lucide icon name like 'dollar-sign', got {value!r}")
    return value


HttpsUrl = Annotated[str, AfterValidator(https_url)]
Colour = Annotated[str, AfterValidator(hex_colour)]
Icon = Annotated[str, AfterValidator(icon_name)]
Key = Annotated[str, Field(pattern=KEY_PATTERN, max_length=64)]
Seconds = Annotated[int, Field(gt=0)]
PerMinute = Annotated[int, Field(gt=0)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class AuthSpec(Frozen):
    mode: AuthMode
    # The shared auth server in providers/_families/<family>.toml; its [auth] is merged under this table.
    family: Key | None = None
    authorize_url: HttpsUrl | None = None
    token_url: HttpsUrl | None = None
    revoke_url: HttpsUrl | None = None
    scopes: tuple[str, ...] = ()
    pkce: bool = False
    client_auth: Literal["basic", "post"] = "basic"
    access_token_lifetime: Seconds | None = None
    refresh_token_lifetime: Seconds | None = None
    refresh_rotates: bool = False
    # After a rotation, how long the previous refresh token still works (lost-response recovery).
    refresh_reuse_grace_seconds: Annotated[int, Field(ge=0)] = 0
    # Query parameters of the OAuth callback that identify the account (QBO's realmId).
    keep_callback_params: tuple[str, ...] = ()
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)
    # For api_key mode: where the key goes on each request.
    api_key_in: Literal["bearer", "basic", "header", "query"] | None = None
    api_key_name: str | None = None
    # The account a connect lands on belongs to one business: while one fieldhub business has it connected,
    # another's connect of it is refused (its events could only reach one of them). Not for a person's
    # login (a calendar, a profile) that several businesses may share, nor for an API key.
    one_business_per_account: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode is AuthMode.OAUTH2:
            missing = [f for f in ("authorize_url", "token_url") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"oauth2 needs {', '.join(missing)} (or a family that provides them)")
            if self.api_key_in is not None:
                raise ValueError("api_key_in is only for mode = 'api_key'")
        else:
            stray = [f for f in ("authorize_url", "token_url", "revoke_url") if getattr(self, f) is not None]
            if stray or self.scopes or self.pkce or self.refresh_rotates:
                raise ValueError(f"mode = {self.mode.value!r} takes no OAuth settings")
        if self.mode is AuthMode.API_KEY:
            if self.api_key_in is None:
                raise ValueError("mode = 'api_key' needs api_key_in (bearer, basic, header or query)")
            if self.api_key_in in ("header", "query") and not self.api_key_name:
                raise ValueError(f"api_key_in = {self.api_key_in!r} needs api_key_name")
        if self.refresh_reuse_grace_seconds and not self.refresh_rotates:
            raise ValueError("refresh_reuse_grace_seconds only makes sense when refresh_rotates = true")
        return self


class ApiSpec(Frozen):
    base_url: HttpsUrl
    sandbox_base_url: HttpsUrl | None = None
    rate_limit_per_minute: PerMinute | None = None
    daily_limit: PerMinute | None = None
    concurrency: Annotated[int, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(gt=0)] | None = None
    batch_per_minute: PerMinute | None = None
    retry_statuses: tuple[Annotated[int, Field(ge=400, le=599)], ...] = (429, 500, 502, 503, 504)

    @model_validator(mode="after")
    def _batch(self) -> Self:
        if self.batch_per_minute is not None and self.batch_size is None:
            raise ValueError("batch_per_minute needs batch_size")
        return self


class CursorSpec(Frozen):
    field: str
    kind: CursorKind


class EntitySpec(Frozen):
    remote: str
    direction: Direction
    conflict: ConflictPolicy | None = None
    cursor: CursorSpec | None = None
    # Declared so the pages can say what is coming, but not built yet: nothing collects or sends it, and
    # `fieldhub check` requires an implementation of every entity that is not planned.
    planned: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_conflict(cls, data: object) -> object:
        # A one-way entity has an obvious winner; a two-way one must say how a clash is settled.
        if isinstance(data, dict) and data.get("conflict") is None:
            winner = {"import": ConflictPolicy.REMOTE_WINS, "export": ConflictPolicy.LOCAL_WINS}
            if data.get("direction") in winner:
                data = {**data, "conflict": winner[data["direction"]]}
        return data

    @model_validator(mode="after")
    def _conflict(self) -> Self:
        if self.conflict is None:
            raise ValueError("direction = 'both' needs a conflict policy")
        return self


class WebhookSpec(Frozen):
    scheme: WebhookScheme
    signature_header: str | None = None
    # The ProviderCredentials field (settings.provider(key).<field>) that holds the signing secret.
    secret_setting: Literal["webhook_secret", "api_key", "client_secret"] = "webhook_secret"

    @model_validator(mode="after")
    def _header(self) -> Self:
        in_body = {WebhookScheme.EVENT_HASH, WebhookScheme.CLIENT_STATE, WebhookScheme.BASIC_AUTH}
        if self.scheme not in in_body and not self.signature_header:
            raise ValueError(f"scheme {self.scheme.value!r} needs signature_header")
        return self


class HealthSpec(Frozen):
    """A cheap authenticated call that proves the grant still works (userinfo, /me, CompanyInfo, /connections).

    The health check (hub/connections/probe.py) makes it when a connection has had no sync traffic for a while:
    an answer proves the sign-in, a 401 that a token refresh can't cure means it is gone.
    """

    # An https:// URL, or a path under [api].base_url ("/companyinfo/{account_id}"); {account_id} is filled in.
    url: str = Field(min_length=1)
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None  # a JSON body (a GraphQL query)

    @model_validator(mode="after")
    def _where(self) -> Self:
        if not self.url.startswith("/"):
            https_url(self.url)
        if self.body is not None and self.method != "POST":
            raise ValueError("a body needs method = 'POST'")
        return self


class HubCardSpec(Frozen):
    """Overrides for the hub card a provider leads (the provider with the lowest hub_order in its card)."""

    title: str | None = None
    description: str | None = None
    icon: Icon | None = None
    colour: Colour | None = None


class ProviderSpec(Frozen):
    key: Key
    name: str = Field(min_length=1, max_length=80)
    category: Capability
    icon: Icon
    brand_color: Colour
    description: str = Field(min_length=1, max_length=200)
    hub_order: Annotated[int, Field(ge=0)]
    # Where the provider is set up: a card on the Integrations hub, or another Settings category.
    card: Key | None = None
    settings_category: SettingsCategory | None = None
    hub_card: HubCardSpec | None = None
    auth: AuthSpec
    api: ApiSpec
    entities: dict[Key, EntitySpec] = Field(default_factory=dict)
    webhooks: WebhookSpec | None = None
    health: HealthSpec | None = None

    def syncs(self, entity: str, direction: Direction) -> bool:
        """Whether this provider really moves `entity` that way today (declared both ways counts; planned doesn't)."""
        declared = self.entities.get(entity)
        if declared is None or declared.planned:
            return False
        return declared.direction in (direction, Direction.BOTH)

    @model_validator(mode="after")
    def _placement(self) -> Self:
        if (self.card is None) == (self.settings_category is None):
            raise ValueError("set exactly one of card (a hub card) or settings_category")
        if self.hub_card is not None and self.card is None:
            raise ValueError("[hub_card] is only for providers that sit on a hub card")
        return self


class FamilySpec(Frozen):
    """providers/_families/<key>.toml: an auth server shared by several providers (Google, Microsoft)."""

    name: str
    auth: AuthSpec


def tint(colour: str, alpha: float) -> str:
    """A brand colour as a translucent background: rgba() with the given alpha."""
    value = hex_colour(colour).lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha:g})"
