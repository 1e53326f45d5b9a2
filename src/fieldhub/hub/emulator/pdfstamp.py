"""What a signing service does to a PDF, for the e-signature emulators: find anchor text, stamp the signature
there, and write a certificate of completion.

pypdf reads where each anchor string is drawn (text position through the page's transforms), fpdf2 draws an
overlay page with the signer's name, and pypdf merges it onto the original page: the text stays text, so the
signed copy can be searched for the signer's name as a real one can.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter


@dataclass(frozen=True)
class Anchor:
    page: int  # 0-based
    x: float  # points from the left
    y: float  # points from the bottom (PDF space)


def find_anchors(pdf: bytes, strings: Sequence[str]) -> dict[str, Anchor]:
    """Where each string is first drawn. A string split across drawing operations is not found (as DocuSign's)."""
    found: dict[str, Anchor] = {}
    reader = PdfReader(io.BytesIO(pdf))
    for number, page in enumerate(reader.pages):

        def visit(text: str, cm: list[float], tm: list[float], font: object, size: float, n: int = number) -> None:
            for anchor in strings:
                if anchor in text and anchor not in found:
                    x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                    y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                    found[anchor] = Anchor(n, x, y)

        page.extract_text(visitor_text=visit)
    return found


def page_count(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def _overlay(width: float, height: float, marks: Sequence[tuple[float, float, str, float]], header: str) -> bytes:
    sheet = FPDF(unit="pt", format=(width, height))
    sheet.set_auto_page_break(False)
    sheet.add_page()
    sheet.set_text_color(20, 40, 120)
    for x, y, text, size in marks:
        sheet.set_font("Helvetica", "I", size)
        # fpdf2 measures from the top; the anchor's y is from the bottom, at the text's baseline.
        sheet.text(x, height - y, text.encode("latin-1", "replace").decode("latin-1"))
    if header:
        sheet.set_font("Helvetica", "", 7)
        sheet.set_text_color(90, 90, 90)
        sheet.text(18, 14, header)
    return bytes(sheet.output())


def stamp(pdf: bytes, marks: Mapping[str, str], *, header: str = "", size: float = 16) -> bytes:
    """The PDF with each anchor's text written at the anchor (and `header` atop every page)."""
    anchors = find_anchors(pdf, list(marks))
    first = next(iter(marks), "")
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for number, page in enumerate(writer.pages):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        here = [(a.x, a.y, marks[s], size if s == first else 10) for s, a in anchors.items() if a.page == number]
        overlay = PdfReader(io.BytesIO(_overlay(width, height, here, header))).pages[0]
        page.merge_page(overlay)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def stamp_at(pdf: bytes, marks: Sequence[tuple[int, float, float, str, float]], *, header: str = "") -> bytes:
    """The PDF with each (page from 0, x from the left, y from the bottom, text, size) written there."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for number, page in enumerate(writer.pages):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        here = [(x, y, text, size) for n, x, y, text, size in marks if n == number]
        overlay = PdfReader(io.BytesIO(_overlay(width, height, here, header))).pages[0]
        page.merge_page(overlay)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def page_height(pdf: bytes, page: int = 0) -> float:
    return float(PdfReader(io.BytesIO(pdf)).pages[page].mediabox.height)


def certificate(title: str, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> bytes:
    """A certificate of completion: a title, then sections of label/value rows."""
    doc = FPDF(unit="pt", format="Letter")
    doc.set_margins(48, 48, 48)
    doc.add_page()
    doc.set_font("Helvetica", "B", 18)
    doc.cell(0, 28, title, new_x="LMARGIN", new_y="NEXT")
    for heading, rows in sections:
        doc.ln(8)
        doc.set_font("Helvetica", "B", 11)
        doc.cell(0, 18, heading, new_x="LMARGIN", new_y="NEXT")
        for label, value in rows:
            doc.set_font("Helvetica", "B", 9)
            doc.cell(150, 14, label)
            doc.set_font("Helvetica", "", 9)
            doc.multi_cell(0, 14, value.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN", new_y="NEXT")
    return bytes(doc.output())


def combine(pdfs: Sequence[bytes]) -> bytes:
    writer = PdfWriter()
    for pdf in pdfs:
        for page in PdfReader(io.BytesIO(pdf)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
