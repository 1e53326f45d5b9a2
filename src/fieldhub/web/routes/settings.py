"""Settings: the category page, the company profile, the Integrations hub and its card pages, Billing & Taxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from fieldhub.hub import features, registry
from fieldhub.hub.connection_status import card_status, connection_status
from fieldhub.hub.spec import AuthMode, ConflictPolicy, Direction, ProviderSpec, SettingsCategory, tint
from fieldhub.web.deps import AdminCtx, Ctx, WebCtx
from fieldhub.web.routes.connections import panel_context
from fieldhub.web.routes.sync_pages import sync_dashboards
from fieldhub.web.templating import render

router = APIRouter(prefix="/settings")

EMERALD, AMBER, BLUE = "#10B981", "#F59E0B", "#3B82F6"


@dataclass(frozen=True)
class SettingsLink:
    title: str
    description: str
    icon: str
    href: str
    colour: str

    @property
    def background(self) -> str:
        return tint(self.colour, registry.ICON_TINT)


@dataclass(frozen=True)
class SettingsGroup:
    title: str
    accent: str
    links: tuple[SettingsLink, ...]


def _billing_link(p: ProviderSpec) -> SettingsLink:
    return SettingsLink(p.name, p.description, p.icon, f"/settings/billing/{p.key}", p.brand_color)


def settings_groups(ctx: Ctx) -> list[SettingsGroup]:
    """The categories a user sees; integration setup (the hub, payments) is for Owner and Admin only."""
    groups = [
        SettingsGroup(
            "Company",
            BLUE,
            (
                SettingsLink(
                    "Company profile",
                    "Name, time zone, currency and contact details.",
                    "building-2",
                    "/settings/company",
                    BLUE,
                ),
                SettingsLink(
                    "Your profile and API tokens",
                    "Who you are here, and the tokens that let tools use /api/v1 as you.",
                    "key-round",
                    "/profile",
                    BLUE,
                ),
                SettingsLink(
                    "Email alerts",
                    "Which alerts reach you by email.",
                    "mail",
                    "/settings/notifications",
                    BLUE,
                ),
            ),
        )
    ]
    if ctx.can_manage_integrations:
        groups.append(
            SettingsGroup(
                "Operations",
                EMERALD,
                (
                    SettingsLink(
                        "Integrations", "Connect the tools you already use.", "link", "/settings/integrations", EMERALD
                    ),
                ),
            )
        )
        billing = registry.registry().in_settings_category(SettingsCategory.BILLING)
        if billing:
            links = tuple(_billing_link(p) for p in billing)
            groups.append(SettingsGroup("Billing & Taxes", AMBER, links))
    return groups


def sync_rows(spec: ProviderSpec) -> list[dict[str, Any]]:
    """What a provider's toml says it keeps in step, in words: (records, which way, what it is called there)."""
    rows = []
    for name, entity in spec.entities.items():
        if entity.direction is Direction.IMPORT:
            way = f"From {spec.name}"
        elif entity.direction is Direction.EXPORT:
            way = f"To {spec.name}"
        else:
            winner = {
                ConflictPolicy.NEWEST_WINS: "newest edit wins",
                ConflictPolicy.REMOTE_WINS: f"{spec.name} wins a clash",
                ConflictPolicy.LOCAL_WINS: "fieldhub wins a clash",
            }[entity.conflict or ConflictPolicy.NEWEST_WINS]
            way = f"Both ways ({winner})"
        rows.append({"records": features.plural(name), "way": way, "remote": entity.remote, "coming": entity.planned})
    return rows


def auth_words(spec: ProviderSpec) -> str:
    if spec.auth.mode is AuthMode.OAUTH2:
        return f"Sign in at {spec.name} and approve access (OAuth 2.0); no password is stored here."
    if spec.auth.mode is AuthMode.API_KEY:
        return f"An API key from your {spec.name} account, stored encrypted."
    return "No sign-in needed."


def limit_words(spec: ProviderSpec) -> str:
    parts = []
    if spec.api.rate_limit_per_minute:
        parts.append(f"{spec.api.rate_limit_per_minute:,} requests a minute")
    if spec.api.daily_limit:
        parts.append(f"{spec.api.daily_limit:,} a day")
    if spec.api.concurrency:
        parts.append(f"{spec.api.concurrency} at a time")
    if spec.api.batch_size:
        parts.append(f"batches of up to {spec.api.batch_size}")
    return ", ".join(parts).capitalize() + "." if parts else f"{spec.name} publishes no limit; the hub paces itself."


async def provider_panels(
    request: Request, ctx: Ctx, specs: tuple[ProviderSpec, ...], key_errors: dict[str, str] | None = None
) -> list[dict]:
    """Each provider on a card's page: its facts from provider.toml and its connection panel.

    `key_errors`: a refused API key's reason per provider, shown beside the key field it came from.
    """
    panels = []
    for p in specs:
        panel = {
            "spec": p,
            "background": tint(p.brand_color, registry.ICON_TINT),
            "rows": sync_rows(p),
            "auth": auth_words(p),
            "limits": limit_words(p),
            # A provider whose hooks can create an account offers that beside connecting an existing one.
            "onboard": hasattr(registry.import_module(p.key, "hooks"), "onboard"),
            "key_error": (key_errors or {}).get(p.key, ""),
            **await panel_context(request, ctx, p.key),
        }
        panel["sync"] = await sync_dashboards(ctx, panel["conn_panel"])
        # A capability adds its own part under the connection (the calendar picker and settings): found by
        # folder, capabilities/<kind>/pages.py's `panel`, as the house finds its routes.
        pages = registry.capability_module(p.category, "pages") if p.category in registry.capability_names() else None
        panel["capability"] = await pages.panel(request, ctx, p, panel["conn_panel"]) if pages is not None else None
        panels.append(panel)
    return panels


async def provider_page(
    request: Request, ctx: Ctx, spec: ProviderSpec, *, key_error: str = "", status: int = 200
) -> Response:
    """The page a provider is set up on (its hub card's page, or its own under Billing & Taxes)."""
    errors = {spec.key: key_error} if key_error else {}
    if spec.card:
        card = registry.registry().card(spec.card)
        panels = await provider_panels(request, ctx, card.providers, errors)
        return render(request, "settings/card.html", {"card": card, "panels": panels}, status)
    panels = await provider_panels(request, ctx, (spec,), errors)
    return render(request, "settings/billing_provider.html", {"spec": spec, "panels": panels}, status)


@router.get("")
async def settings_home(request: Request, ctx: WebCtx) -> Response:
    return render(request, "settings/index.html", {"groups": settings_groups(ctx)})


@router.get("/company")
async def company_profile(request: Request, ctx: WebCtx) -> Response:
    return render(request, "settings/company.html")


@router.get("/integrations")
async def integrations_hub(request: Request, ctx: AdminCtx) -> Response:
    cards = [
        {"card": card, "status": await card_status(ctx.db, ctx.tenant_id, card), "now": features.card_now_line(card)}
        for card in registry.cards()
    ]
    return render(request, "settings/integrations.html", {"cards": cards})


@router.get("/integrations/{card_key}")
async def integration_card(request: Request, ctx: AdminCtx, card_key: str) -> Response:
    try:
        card = registry.registry().card(card_key)
    except registry.UnknownProvider:
        raise HTTPException(404, "There is no such integration.") from None
    panels = await provider_panels(request, ctx, card.providers)
    return render(request, "settings/card.html", {"card": card, "panels": panels})


@router.get("/billing")
async def billing(request: Request, ctx: AdminCtx) -> Response:
    specs = registry.registry().in_settings_category(SettingsCategory.BILLING)
    links = [_billing_link(p) for p in specs]
    statuses = [await connection_status(ctx.db, ctx.tenant_id, p.key) for p in specs]
    return render(request, "settings/billing.html", {"items": list(zip(links, statuses, strict=True))})


@router.get("/billing/{key}")
async def billing_provider(request: Request, ctx: AdminCtx, key: str) -> Response:
    specs = registry.registry().in_settings_category(SettingsCategory.BILLING)
    chosen = tuple(p for p in specs if p.key == key)
    if not chosen:
        raise HTTPException(404, "There is no such billing integration.")
    panels = await provider_panels(request, ctx, chosen)
    return render(request, "settings/billing_provider.html", {"spec": chosen[0], "panels": panels})
