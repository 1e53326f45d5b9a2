"""ProviderSpec: strict validation of provider.toml data."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from fieldhub.hub.spec import AuthMode, Capability, ConflictPolicy, ProviderSpec, tint

BASE: dict[str, Any] = {
    "key": "acme_books",
    "name": "Acme Books",
    "card": "accounting",
    "category": "accounting",
    "icon": "dollar-sign",
    "brand_color": "#2ca01c",
    "description": "Books.",
    "hub_order": 5,
    "auth": {
        "mode": "oauth2",
        "authorize_url": "https://auth.example.com/authorize",
        "token_url": "https://auth.example.com/token",
        "scopes": ["books"],
        "refresh_rotates": True,
        "refresh_reuse_grace_seconds": 60,
    },
    "api": {"base_url": "https://api.example.com/v1", "rate_limit_per_minute": 100, "batch_size": 30},
    "entities": {"customer": {"remote": "Customer", "direction": "both", "conflict": "newest_wins"}},
}


def spec(**changes: Any) -> ProviderSpec:
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value
    return ProviderSpec.model_validate(data)


def test_a_good_spec_loads_frozen() -> None:
    s = spec()
    assert s.category is Capability.ACCOUNTING
    assert s.auth.mode is AuthMode.OAUTH2
    assert s.brand_color == "#2CA01C"
    assert s.auth.scopes == ("books",)
    with pytest.raises(ValidationError):
        s.name = "Other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"colour_typo": "#fff"}, "Extra inputs"),
        ({"auth__scope": "x"}, "Extra inputs"),
        ({"auth__token_url": "http://auth.example.com/token"}, "https://"),
        ({"api__base_url": "ftp://api.example.com"}, "https://"),
        ({"brand_color": "green"}, "colour"),
        ({"brand_color": "#12345"}, "colour"),
        ({"icon": "Dollar Sign"}, "Lucide"),
        ({"key": "Acme-Books"}, "pattern"),
        ({"category": "crm"}, "accounting"),
        ({"auth__authorize_url": ...}, "oauth2 needs authorize_url"),
        ({"auth__refresh_rotates": False}, "refresh_reuse_grace_seconds"),
        ({"entities__customer__conflict": ...}, "needs a conflict policy"),
        ({"entities__customer__direction": "sideways"}, "import"),
        ({"card": ...}, "exactly one of card"),
        ({"settings_category": "billing"}, "exactly one of card"),
        ({"api__batch_size": ..., "api__batch_per_minute": 40}, "batch_per_minute needs batch_size"),
    ],
)
def test_bad_specs_are_refused(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as e:
        spec(**change)
    assert words in str(e.value)


def test_one_way_entities_get_the_obvious_winner() -> None:
    s = spec(
        entities={
            "invoice": {"remote": "Invoice", "direction": "export"},
            "tax": {"remote": "T", "direction": "import"},
        }
    )
    assert s.entities["invoice"].conflict is ConflictPolicy.LOCAL_WINS
    assert s.entities["tax"].conflict is ConflictPolicy.REMOTE_WINS


def test_api_key_mode_takes_no_oauth_settings() -> None:
    with pytest.raises(ValidationError, match="takes no OAuth settings"):
        spec(auth={"mode": "api_key", "api_key_in": "bearer", "token_url": "https://x.example.com/t"})
    with pytest.raises(ValidationError, match="needs api_key_name"):
        spec(auth={"mode": "api_key", "api_key_in": "query"})
    assert spec(auth={"mode": "api_key", "api_key_in": "query", "api_key_name": "key"}).auth.api_key_name == "key"


def test_webhooks_need_a_header_unless_the_proof_is_in_the_body() -> None:
    with pytest.raises(ValidationError, match="needs signature_header"):
        spec(webhooks={"scheme": "hmac_sha256_base64"})
    assert spec(webhooks={"scheme": "event_hash", "secret_setting": "api_key"}).webhooks is not None
    with pytest.raises(ValidationError):
        spec(webhooks={"scheme": "event_hash", "secret_setting": "the_secret_itself"})


def test_tint_is_the_colour_at_an_alpha() -> None:
    assert tint("#009FD9", 0.15) == "rgba(0, 159, 217, 0.15)"
    assert tint("#fff", 0.5) == "rgba(255, 255, 255, 0.5)"
