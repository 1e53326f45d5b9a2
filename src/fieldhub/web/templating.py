"""Jinja2 environment shared by every page: filters for money and times, and render()."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader

from fieldhub.core.money import format_money
from fieldhub.hub.notify.email import uses_mailbox

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PROVIDERS = Path(__file__).parent.parent / "providers"
CAPABILITIES = Path(__file__).parent.parent / "capabilities"
templates = Jinja2Templates(directory=str(TEMPLATES))
# A capability's and a provider's own pages keep their templates in their folder: "<name>/page.html" is
# capabilities/<name>/templates/page.html or providers/<name>/templates/page.html, so nothing about one kind
# or one provider lives in shared templates (capability and provider names never meet: `fieldhub check`).
templates.env.loader = ChoiceLoader(
    [
        FileSystemLoader(str(TEMPLATES)),
        PrefixLoader(
            {
                folder.name: FileSystemLoader(str(folder / "templates"))
                for root in (CAPABILITIES, PROVIDERS)
                for folder in sorted(root.iterdir())
                if (folder / "templates").is_dir()
            }
        ),
    ]
)


def _money(value: Decimal | str | None, currency: str = "USD") -> str:
    """An amount for the page; a string is an amount as the JSON API writes it ("650.00")."""
    if value is None:
        return ""
    return format_money(Decimal(value) if isinstance(value, str) else value, currency)


def _local(value: datetime | None, tz: str = "UTC", fmt: str = "%b %-d, %Y %-I:%M %p") -> str:
    """Times are stored in UTC and shown in the business's time zone."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def _moment(value: datetime | None, tz: str = "UTC") -> str:
    """A time in the business's zone, short: the year only when it is not this year's."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz))
    same_year = local.year == datetime.now(ZoneInfo(tz)).year
    return local.strftime("%b %-d, %-I:%M %p" if same_year else "%b %-d, %Y %-I:%M %p")


templates.env.filters["money"] = _money
templates.env.filters["local"] = _local
templates.env.filters["moment"] = _moment


MAILBOX = "/dev/mailbox"


def demo_mailbox(request: Request, ctx: Any) -> str:
    """Where a signed-in owner or admin reads the emails the demo "sent" (none leave a demo); "" elsewhere."""
    settings = getattr(request.app.state, "settings", None)
    if ctx is None or settings is None or not ctx.can_manage_integrations or not uses_mailbox(settings):
        return ""
    return MAILBOX


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    ctx = getattr(request.state, "ctx", None)
    data = {
        "ctx": ctx,
        "user": ctx.user if ctx else None,
        "tenant": ctx.tenant if ctx else None,
        "demo_mailbox": demo_mailbox(request, ctx),
    }
    data.update(context or {})
    return templates.TemplateResponse(request, name, data, status_code=status_code)


ICONS = STATIC / "vendor" / "lucide"
_icon_cache: dict[str, str] = {}


def icon(name: str, size: int = 20, cls: str = "") -> Any:
    """Inline a vendored Lucide SVG so it takes the text colour (stroke="currentColor")."""
    from markupsafe import Markup

    if name not in _icon_cache:
        path = ICONS / f"{name}.svg"
        if not path.is_file() or "/" in name:
            raise ValueError(f"icon {name!r} is not vendored under {ICONS}")
        svg = path.read_text()
        _icon_cache[name] = svg[svg.index("<svg") :]
    svg = _icon_cache[name].replace('width="24"', f'width="{size}"').replace('height="24"', f'height="{size}"')
    svg = svg.replace('class="lucide', f'aria-hidden="true" class="{cls} lucide', 1)
    return Markup(svg)


templates.env.globals["icon"] = icon
