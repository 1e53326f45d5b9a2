"""The registry: every provider.toml valid, hub cards in the guide's order, families merged, bad tomls refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fieldhub.hub import registry
from fieldhub.hub.registry import PROVIDERS_DIR, UnknownProvider, load
from fieldhub.hub.spec import AuthMode, Capability, SettingsCategory, SpecError

ALL_KEYS = {
    "quickbooks", "xero", "freshbooks", "wave", "stripe", "google_calendar", "outlook", "docusign",
    "dropbox_sign", "thumbtack", "google_business_profile", "ahrefs", "pagespeed", "voice_ai", "voyage",
}  # fmt: skip


def test_every_provider_folder_loads() -> None:
    reg = load()
    assert set(reg.providers) == ALL_KEYS
    assert registry.get("quickbooks") is registry.registry().providers["quickbooks"]
    assert {p.key for p in registry.all()} == ALL_KEYS


def test_cards_in_the_seed_order_with_the_seed_texts() -> None:
    cards = registry.cards()
    assert [(c.title, c.description, c.icon, c.colour) for c in cards] == [
        ("Thumbtack", "Receive and manage leads from Thumbtack.com.", "briefcase", "#009FD9"),
        ("QuickBooks", "Sync invoices and customers with QuickBooks.", "dollar-sign", "#2CA01C"),
        ("Voice AI", "AI-powered phone assistant.", "phone", "#3B82F6"),
        ("Calendar", "Sync with Google Calendar, Outlook.", "calendar", "#3B82F6"),
        ("E-Signatures", "DocuSign and Dropbox Sign (formerly HelloSign).", "clipboard-list", "#F59E0B"),
        ("Google Business Profile", "Manage reviews, analytics, and business info.", "star", "#34A853"),
        ("SEO Integrations", "Ahrefs backlinks and Core Web Vitals monitoring.", "search", "#3B82F6"),
        ("Accounting", "Sync invoices, customers and items with Xero, FreshBooks or Wave.", "calculator", "#A78BFA"),
        # Not in the seed's list: billing memory's embedding provider (issue 22), after the seed's cards.
        (
            "Voyage AI",
            "Embeddings for billing memory: what you charged for a job, answered from your own invoices.",
            "history",
            "#012A4A",
        ),
    ]
    by_key = {c.key: [p.key for p in c.providers] for c in cards}
    assert by_key["calendar"] == ["google_calendar", "outlook"]
    assert by_key["esignatures"] == ["docusign", "dropbox_sign"]
    assert by_key["seo"] == ["ahrefs", "pagespeed"]
    assert by_key["accounting"] == ["xero", "freshbooks", "wave"]


def test_stripe_is_under_billing_not_on_the_hub() -> None:
    assert all(p.key != "stripe" for c in registry.cards() for p in c.providers)
    billing = registry.registry().in_settings_category(SettingsCategory.BILLING)
    assert [p.key for p in billing] == ["stripe"]
    assert billing[0].category is Capability.PAYMENTS and billing[0].icon == "credit-card"


def test_real_auth_facts() -> None:
    qbo = registry.get("quickbooks")
    assert qbo.auth.keep_callback_params == ("realmId",)
    assert qbo.auth.refresh_rotates and qbo.auth.refresh_reuse_grace_seconds == 86400
    assert (qbo.api.rate_limit_per_minute, qbo.api.concurrency, qbo.api.batch_size, qbo.api.batch_per_minute) == (
        500, 10, 30, 40,
    )  # fmt: skip
    xero = registry.get("xero")
    assert xero.auth.refresh_rotates and xero.auth.refresh_reuse_grace_seconds == 1800
    fb = registry.get("freshbooks")
    assert fb.auth.refresh_rotates and fb.auth.refresh_reuse_grace_seconds == 0  # single-use
    assert registry.get("stripe").auth.scopes == ("read_write",)
    assert registry.get("ahrefs").auth.mode is AuthMode.API_KEY


def test_families_are_merged() -> None:
    gcal = registry.get("google_calendar")
    assert gcal.auth.family == "google"
    assert gcal.auth.token_url == "https://oauth2.googleapis.com/token"
    assert gcal.auth.extra_authorize_params["access_type"] == "offline"
    assert gcal.auth.extra_authorize_params["prompt"] == "consent"
    assert not gcal.auth.refresh_rotates
    assert "https://www.googleapis.com/auth/calendar.events" in gcal.auth.scopes  # the provider's own scopes
    gbp = registry.get("google_business_profile")
    assert gbp.auth.authorize_url == gcal.auth.authorize_url
    assert gbp.auth.scopes != gcal.auth.scopes
    outlook = registry.get("outlook")
    assert outlook.auth.family == "microsoft" and outlook.auth.refresh_rotates
    assert outlook.auth.token_url.startswith("https://login.microsoftonline.com/")


def test_unknown_provider() -> None:
    with pytest.raises(UnknownProvider, match="no provider 'nope'"):
        registry.get("nope")


def test_import_module_by_file_name() -> None:
    assert registry.import_module("quickbooks", "no_such_module") is None
    module = registry.import_module("quickbooks", "emulator")
    assert module is not None and module.__name__ == "fieldhub.providers.quickbooks.emulator"
    with pytest.raises(ValueError):
        registry.import_module("quickbooks", "../xero")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the real providers folder to break."""
    root = tmp_path / "providers"
    shutil.copytree(PROVIDERS_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "emulator", "*.py"))
    return root


def test_a_copy_loads(tree: Path) -> None:
    assert set(load(tree).providers) == ALL_KEYS


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


BROKEN = [
    ("xero/provider.toml", 'icon = "receipt"', 'icon = "receipt"\ncolor = "#fff"', "provider.toml: color: unknown key"),
    (
        "xero/provider.toml",
        "https://identity.xero.com/connect/token",
        "http://identity.xero.com/connect/token",
        "xero/provider.toml: auth.token_url: must be an https:// URL",
    ),
    ("wave/provider.toml", 'brand_color = "#2F6FEB"', 'brand_color = "blue"', "wave/provider.toml: brand_color"),
    ("wave/provider.toml", 'key = "wave"', 'key = "waves"', "must equal the folder name 'wave'"),
    ("outlook/provider.toml", 'family = "microsoft"', 'family = "yahoo"', "unknown family 'yahoo'"),
    ("thumbtack/provider.toml", 'name = "Thumbtack"', 'name = "Thumbtack', "thumbtack/provider.toml: not valid TOML"),
    (
        "outlook/provider.toml",
        "hub_order = 41",
        'hub_order = 41\n[hub_card]\ntitle = "Mine"',
        "only the card's lead provider (google_calendar",
    ),
    ("google_calendar/provider.toml", 'title = "Calendar"\n', "", "must give [hub_card] title and description"),
    ("_families/google.toml", 'client_auth = "post"', 'client_auth = "jwt"', "_families/google.toml: auth.client_auth"),
]


@pytest.mark.parametrize(("file", "old", "new", "message"), BROKEN)
def test_a_bad_toml_is_refused_with_a_clear_message(tree: Path, file: str, old: str, new: str, message: str) -> None:
    _edit(tree / file, old, new)
    with pytest.raises(SpecError) as e:
        load(tree)
    assert message in str(e.value)


def test_a_folder_without_provider_toml_is_refused(tree: Path) -> None:
    (tree / "half_done").mkdir()
    with pytest.raises(SpecError, match="half_done: a provider folder needs a provider.toml"):
        load(tree)
    (tree / "half_done").rmdir()
    (tree / "_scratch").mkdir()  # underscore folders are not providers
    assert "_scratch" not in load(tree).providers
