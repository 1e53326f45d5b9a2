"""Inline SVG line charts drawn on the server (no script: the CSP allows none inline), with the good /
needs-improvement / poor bands behind a Core Web Vitals series."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 200, 48, 12, 12, 28
BANDS = (("good", "#0CCE6B"), ("needs-improvement", "#FFA400"), ("poor", "#FF4E42"))


def line_chart(
    title: str,
    points: Sequence[tuple[date, float | Decimal | None]],
    *,
    bands: tuple[Decimal, Decimal] | None = None,
    unit: str = "",
    label: str = "",
) -> Markup:
    """One series as an accessible SVG (role=img, a title, and each point's value in a <title> a reader can hover)."""
    data = [(d, float(v)) for d, v in points if v is not None]
    if not data:
        return Markup(f'<p class="muted">No {escape(title)} figures yet.</p>')
    top = max(v for _, v in data)
    if bands is not None:
        top = max(top, float(bands[1]) * 1.15)
    top = top * 1.1 or 1.0
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (inner_w * i / (len(data) - 1) if len(data) > 1 else inner_w / 2)

    def y(v: float) -> float:
        return PAD_T + inner_h * (1 - v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="none" data-chart="{escape(label or title)}"><title>{escape(title)}</title>'
    ]
    if bands is not None:
        edges = [0.0, float(bands[0]), float(bands[1]), top]
        for (name, colour), low, high in zip(BANDS, edges, edges[1:], strict=False):
            parts.append(
                f'<rect class="band {name}" x="{PAD_L}" y="{y(high):.1f}" width="{inner_w}" '
                f'height="{max(0.0, y(low) - y(high)):.1f}" fill="{colour}" fill-opacity="0.12"/>'
            )
    for frac in (0, 0.5, 1):
        v = top * frac
        parts.append(
            f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="axis">{_fmt(v)}{escape(unit)}</text>'
        )
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(data))
    parts.append(f'<path d="{path}" fill="none" stroke="currentColor" stroke-width="2"/>')
    for i, (d, v) in enumerate(data):
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" data-value="{_fmt(v)}">'
            f"<title>{d.isoformat()}: {_fmt(v)}{escape(unit)}</title></circle>"
        )
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}" class="axis">{data[0][0].strftime("%b %-d")}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" text-anchor="end" class="axis">'
        f"{data[-1][0].strftime('%b %-d')}</text></svg>"
    )
    return Markup("".join(parts))


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) >= 10:
        return f"{int(v):,}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if v < 10 else f"{v:,.0f}"
