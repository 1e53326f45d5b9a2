"""An estimate as a PDF the customer can read and sign: business, customer, lines, taxes, totals, terms, signature.

Rendered with fpdf2 (PyPI `fpdf2`): pure Python with no system libraries to install (reportlab's fast paths and
WeasyPrint's Pango need C builds), actively maintained (monthly releases, LGPL), embeds a TrueType subset so a
customer's "Łukasz" or "Zoë" prints as written, and writes real text, so the signature anchor a signing service
looks for is found by its text and the signed copy can be searched for the signer's name.

The business has no uploaded logo yet; its logo here is its monogram in a brand-coloured tile, drawn as vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from fieldhub.core.accounts.models import Tenant
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.money import format_money

# Where the signer signs: the text a signing service anchors its signature field on (DocuSign's anchorString,
# Dropbox Sign's text tag), printed white in the signature box so the customer never sees it.
SIGNATURE_ANCHOR = "/sig1/"
DATE_ANCHOR = "/date1/"
# Debian's fonts-dejavu-core (and most Linux images): Unicode glyphs. Without it, the PDF core font Helvetica,
# which covers Latin-1 only; anything outside it prints as "?".
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
BRAND = (37, 99, 235)
INK = (17, 24, 39)
MUTED = (107, 114, 128)
RULE = (209, 213, 219)
STANDARD_TERMS = (
    "By signing below you accept this estimate and authorise {business} to carry out the work described at the "
    "prices shown. Work outside this estimate is quoted separately before it is done. Prices include the taxes "
    "shown; payment is due on completion unless agreed otherwise in writing."
)


@dataclass(frozen=True)
class EstimateDocument:
    """What the PDF shows, read from the estimate: the renderer touches no database."""

    estimate: Estimate
    tenant: Tenant
    tax_label: str = ""


def _font_dir() -> Path | None:
    return next((d for d in FONT_DIRS if (d / "DejaVuSans.ttf").is_file()), None)


class _Pdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(format="Letter", unit="pt")
        self.footer_text = footer_text
        self.set_margins(48, 48, 48)
        self.set_auto_page_break(True, margin=60)
        fonts = _font_dir()
        if fonts is not None:
            self.add_font("Body", "", str(fonts / "DejaVuSans.ttf"))
            self.add_font("Body", "B", str(fonts / "DejaVuSans-Bold.ttf"))
            self.family = "Body"
            self.unicode = True
        else:
            self.family = "Helvetica"
            self.unicode = False

    def text_of(self, value: str) -> str:
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def use(self, size: float, style: str = "", colour: tuple[int, int, int] = INK) -> None:
        self.set_font(self.family, style, size)
        self.set_text_color(*colour)

    def footer(self) -> None:
        self.set_y(-40)
        self.use(8, colour=MUTED)
        self.cell(0, 10, self.text_of(f"{self.footer_text} · page {self.page_no()} of {{nb}}"), align="C")


def _monogram(name: str) -> str:
    words = [w for w in name.replace("&", " ").split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def _address(*parts: str) -> list[str]:
    return [p for p in parts if p and p.strip()]


def _date(value: date) -> str:
    return value.strftime("%B %-d, %Y")


@dataclass(frozen=True)
class Placed:
    """Where an anchor was drawn: page from 0, points from the left and from the bottom (its baseline)."""

    page: int
    x: float
    y: float


def render_estimate_pdf(doc: EstimateDocument) -> bytes:
    """The estimate as PDF bytes (Letter). Deterministic for the same estimate, apart from the file's own dates."""
    return render_with_anchors(doc)[0]


def render_with_anchors(doc: EstimateDocument) -> tuple[bytes, dict[str, Placed]]:
    """The PDF and where its signature and date anchors are (for services that place fields by position)."""
    est, tenant = doc.estimate, doc.tenant
    money = lambda amount: format_money(amount, tenant.currency)  # noqa: E731
    pdf = _Pdf(f"{tenant.name} · Estimate {est.number}")
    pdf.set_title(f"Estimate {est.number}")
    pdf.set_author(tenant.name)
    pdf.set_creator("fieldhub")
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    t = pdf.text_of

    # The business: logo tile, name, contact.
    top = pdf.get_y()
    pdf.set_fill_color(*BRAND)
    pdf.rect(pdf.l_margin, top, 44, 44, style="F", round_corners=True, corner_radius=8)
    pdf.set_xy(pdf.l_margin, top + 12)
    pdf.use(18, "B", (255, 255, 255))
    pdf.cell(44, 20, t(_monogram(tenant.name)), align="C")
    pdf.set_xy(pdf.l_margin + 56, top + 2)
    pdf.use(16, "B")
    pdf.cell(width / 2, 20, t(tenant.name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(pdf.l_margin + 56)
    pdf.use(9, colour=MUTED)
    pdf.cell(width / 2, 12, t(" · ".join(_address(tenant.email, tenant.phone))))
    # The document's own name and numbers, right.
    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.use(20, "B", BRAND)
    pdf.cell(width / 2, 24, "ESTIMATE", align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.use(9)
    facts = [("Number", est.number), ("Issued", _date(est.issue_date))]
    if est.expires_on:
        facts.append(("Valid until", _date(est.expires_on)))
    for label, value in facts:
        pdf.set_x(pdf.l_margin + width / 2)
        pdf.cell(width / 2, 12, t(f"{label}: {value}"), align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_y(max(pdf.get_y(), top + 56) + 12)

    # The customer.
    cust = est.customer
    pdf.use(8, "B", MUTED)
    pdf.cell(0, 12, "PREPARED FOR", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use(11, "B")
    pdf.cell(0, 15, t(cust.display_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use(9)
    city = " ".join(_address(cust.billing_city + ("," if cust.billing_region else ""), cust.billing_region))
    lines = _address(
        cust.company, cust.billing_line1, cust.billing_line2, " ".join(_address(city, cust.billing_postal_code))
    )
    lines += _address(" · ".join(_address(cust.email, cust.phone)))
    for text in lines:
        pdf.cell(0, 12, t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(14)

    # The lines.
    cols = (width - 250, 50, 80, 40, 80)
    heads = ("Description", "Qty", "Unit price", "Tax", "Amount")
    aligns = ("L", "R", "R", "C", "R")
    pdf.set_fill_color(243, 244, 246)
    pdf.use(8, "B", MUTED)
    for w, head, align in zip(cols, heads, aligns, strict=True):
        pdf.cell(w, 18, head.upper(), align=align, fill=True)
    pdf.ln(18)
    pdf.use(9)
    pdf.set_draw_color(*RULE)
    for line in est.lines:
        wrapped = pdf.multi_cell(cols[0], 13, t(line.description), dry_run=True, output="LINES")
        height = 13 * max(1, len(wrapped) if isinstance(wrapped, list) else 1)
        if pdf.get_y() + height > pdf.h - 120:
            pdf.add_page()
        start_y = pdf.get_y()
        pdf.multi_cell(cols[0], 13, t(line.description), align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_xy(pdf.l_margin + cols[0], start_y)
        quantity = f"{Decimal(line.quantity).normalize():f}"
        cells = (quantity, money(line.unit_price), "T" if line.taxable else "", money(line.amount))
        for w, value, align in zip(cols[1:], cells, aligns[1:], strict=True):
            pdf.cell(w, 13, t(value), align=align)
        pdf.set_y(start_y + height)
        pdf.line(pdf.l_margin, pdf.get_y() + 3, pdf.l_margin + width, pdf.get_y() + 3)
        pdf.ln(6)

    # Totals.
    pdf.ln(4)
    label_w, value_w = 130, 90
    x = pdf.l_margin + width - label_w - value_w
    rows = [("Subtotal", money(est.subtotal)), (doc.tax_label or "Tax", money(est.tax_total))]
    pdf.use(9)
    for label, value in rows:
        pdf.set_x(x)
        pdf.cell(label_w, 14, t(label), align="R")
        pdf.cell(value_w, 14, t(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(x)
    pdf.use(11, "B")
    pdf.cell(label_w, 18, "Total", align="R")
    pdf.cell(value_w, 18, t(money(est.total)), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(10)

    # Message and terms.
    if est.memo:
        pdf.use(8, "B", MUTED)
        pdf.cell(0, 12, "MESSAGE", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.use(9)
        pdf.multi_cell(0, 12, t(est.memo), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(6)
    pdf.use(8, "B", MUTED)
    pdf.cell(0, 12, "TERMS", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.use(8, colour=MUTED)
    terms = STANDARD_TERMS.format(business=tenant.name)
    if est.expires_on:
        terms += f" This estimate is valid until {_date(est.expires_on)}."
    pdf.multi_cell(0, 11, t(terms), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(12)

    # The signature block: kept whole on one page.
    if pdf.get_y() > pdf.h - 150:
        pdf.add_page()
    pdf.use(8, "B", MUTED)
    pdf.cell(0, 12, "ACCEPTED BY THE CUSTOMER", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    box_y = pdf.get_y() + 6
    sig_w, date_w = width * 0.6, width * 0.3
    pdf.set_draw_color(*INK)
    pdf.line(pdf.l_margin, box_y + 40, pdf.l_margin + sig_w, box_y + 40)
    pdf.line(pdf.l_margin + width - date_w, box_y + 40, pdf.l_margin + width, box_y + 40)
    # The anchors, white on white, where the signature and date go.
    pdf.use(8, colour=(255, 255, 255))
    placed: dict[str, Placed] = {}
    for anchor, x in ((SIGNATURE_ANCHOR, pdf.l_margin + 2), (DATE_ANCHOR, pdf.l_margin + width - date_w + 2)):
        pdf.set_xy(x, box_y + 24)
        pdf.cell(40, 10, anchor)
        # fpdf2 measures down from the top; a 10 pt cell's 8 pt text sits about 7.4 pt below the cell's top.
        placed[anchor] = Placed(pdf.page_no() - 1, x + pdf.c_margin, pdf.h - (box_y + 24 + 7.4))
    pdf.use(8, colour=MUTED)
    pdf.set_xy(pdf.l_margin, box_y + 43)
    pdf.cell(sig_w, 10, t(f"Signature · {cust.display_name}"))
    pdf.set_xy(pdf.l_margin + width - date_w, box_y + 43)
    pdf.cell(date_w, 10, "Date")
    return bytes(pdf.output()), placed
