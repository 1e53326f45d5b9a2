"""Answering from billing memory: the records that match a question, and figures computed from them.

No model writes the answer. The question picks one of three readings by its words:
- a price ("what did we charge for a water heater install"): the lines of the matching invoices whose text has
  every word of the subject (install ~ installation), their unit prices' min, median and max, how many, when;
- a markup ("our typical markup on plumbing parts"): the lines of parts (product items) whose item has a cost,
  chosen by the subject's words, else by the embedder's nearness of item names to them; markup = (price − cost)
  ÷ cost per line, with the item's cost as it is now;
- a visit ("last time we serviced 14 Oak St"): the records at that address, newest first.
Candidates are the TOP_K records of this business nearest the question in its memory (store.search): each figure
names the records it came from, with links. Fewer than MIN_HISTORY matches: "I don't have enough history".
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldhub.capabilities.memory import store
from fieldhub.capabilities.memory.documents import address
from fieldhub.capabilities.memory.embedders import Embedder
from fieldhub.capabilities.memory.models import MemoryVector
from fieldhub.core.customers.models import Customer
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.invoices.models import Invoice, InvoiceLine
from fieldhub.core.items.models import Item, ItemKind
from fieldhub.core.money import format_money

TOP_K = 400
MIN_HISTORY = 3
ITEM_NEARNESS = 0.2  # cosine of an item name to the subject for it to count as "plumbing" when no word matches
CENT = Decimal("0.01")
STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "we",
        "our",
        "us",
        "what",
        "whats",
        "what's",
        "did",
        "do",
        "does",
        "how",
        "much",
        "many",
        "for",
        "of",
        "on",
        "in",
        "at",
        "to",
        "is",
        "are",
        "was",
        "were",
        "it",
        "its",
        "typical",
        "typically",
        "usual",
        "usually",
        "average",
        "charge",
        "charged",
        "charging",
        "price",
        "prices",
        "priced",
        "cost",
        "costs",
        "paid",
        "pay",
        "bill",
        "billed",
        "billing",
        "quote",
        "quoted",
        "normally",
        "generally",
        "customers",
        "customer",
        "job",
        "jobs",
    }
)
PART_WORDS = {"part", "parts", "material", "materials", "product", "products", "supplies", "supply", "equipment"}
MARKUP = re.compile(r"\b(mark-?ups?|margins?)\b", re.I)
STREET = (
    r"st|street|ave|avenue|rd|road|ln|lane|dr|drive|blvd|boulevard|ct|court|way|pl|place|pkwy|parkway|ter|terrace|"
    r"cir|circle|hwy|highway"
)
ADDRESS = re.compile(rf"\b(\d{{1,6}})\s+((?:[a-z0-9.'-]+\s+){{0,3}}?(?:{STREET}))\b\.?", re.I)
SUFFIX = {
    "street": "st", "avenue": "ave", "road": "rd", "lane": "ln", "drive": "dr", "boulevard": "blvd", "court": "ct",
    "place": "pl", "parkway": "pkwy", "terrace": "ter", "circle": "cir", "highway": "hwy",
}  # fmt: skip


@dataclass
class Source:
    entity: str
    id: int
    number: str
    date: str
    customer: str
    address: str
    link: str
    total: str = ""


@dataclass
class Figure:
    name: str
    value: str
    sources: list[str]  # record numbers (links in `records`)


@dataclass
class Answer:
    question: str
    kind: str  # price | markup | visit
    enough: bool
    text: str
    subject: str = ""
    figures: list[Figure] = field(default_factory=list)
    records: list[Source] = field(default_factory=list)
    basis: str = ""  # what was counted, in words
    model: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "kind": self.kind,
            "enough_history": self.enough,
            "answer": self.text,
            "subject": self.subject,
            "figures": [f.__dict__ for f in self.figures],
            "records": [r.__dict__ for r in self.records],
            "basis": self.basis,
            "model": self.model,
        }


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def subject_terms(question: str) -> list[str]:
    return [w for w in words(question) if w not in STOP and not MARKUP.fullmatch(w)]


def term_matches(term: str, text_words: list[str]) -> bool:
    """`install` matches installation, `heaters` matches heater: a shared start of 5 letters, or the whole word."""
    for w in text_words:
        if w == term or (len(term) >= 4 and w.startswith(term)) or (len(w) >= 4 and term.startswith(w)):
            return True
        if len(term) >= 5 and len(w) >= 5 and w[:5] == term[:5]:
            return True
    return False


def median(values: list[Decimal], places: Decimal = CENT) -> Decimal:
    return Decimal(statistics.median(values)).quantize(places, ROUND_HALF_UP)


def _source(record: Invoice | Estimate) -> Source:
    kind = "invoice" if isinstance(record, Invoice) else "estimate"
    return Source(
        entity=kind,
        id=record.id,
        number=record.number,
        date=record.issue_date.isoformat(),
        customer=record.customer.display_name,
        address=address(record.customer),
        link=f"/{kind}s/{record.id}",
        total=str(record.total),
    )


@dataclass
class Line:
    description: str
    unit_price: Decimal
    item_id: int | None


@dataclass
class Billed:
    """An invoice of the hits, read lightly (its lines' text, price and item): what the figures are made from."""

    id: int
    number: str
    issue_date: date
    customer_id: int
    total: Decimal
    lines: list[Line] = field(default_factory=list)


async def _invoices(session: AsyncSession, tenant_id: int, hits: list[store.Hit]) -> list[Billed]:
    """The hits' invoices (this tenant's only), in the hits' order; estimates were quotes, not charges."""
    ids = [h.record_id for h in hits if h.entity == "invoice"]
    if not ids:
        return []
    found = {
        r.id: Billed(r.id, r.number, r.issue_date, r.customer_id, r.total)
        for r in await session.execute(
            select(Invoice.id, Invoice.number, Invoice.issue_date, Invoice.customer_id, Invoice.total).where(
                Invoice.tenant_id == tenant_id, Invoice.id.in_(ids)
            )
        )
    }
    for r in await session.execute(
        select(InvoiceLine.invoice_id, InvoiceLine.description, InvoiceLine.unit_price, InvoiceLine.item_id)
        .where(InvoiceLine.invoice_id.in_(list(found)))
        .order_by(InvoiceLine.invoice_id, InvoiceLine.position)
    ):
        found[r.invoice_id].lines.append(Line(r.description, r.unit_price, r.item_id))
    return [found[i] for i in ids if i in found]


async def _sources(session: AsyncSession, tenant_id: int, billed: list[Billed]) -> list[Source]:
    customers = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.tenant_id == tenant_id, Customer.id.in_({b.customer_id for b in billed}))
        )
    }
    out = [
        Source(
            entity="invoice",
            id=b.id,
            number=b.number,
            date=b.issue_date.isoformat(),
            customer=customers[b.customer_id].display_name,
            address=address(customers[b.customer_id]),
            link=f"/invoices/{b.id}",
            total=str(b.total),
        )
        for b in billed
        if b.customer_id in customers
    ]
    return sorted(out, key=lambda s: (s.date, s.id), reverse=True)


def _spread(figures: list[Figure], dated: list[tuple[date, str]]) -> None:
    dates = sorted(d for d, _ in dated)
    figures.append(Figure("from", dates[0].isoformat(), [n for d, n in dated if d == dates[0]]))
    figures.append(Figure("to", dates[-1].isoformat(), [n for d, n in dated if d == dates[-1]]))


def _min_med_max(values: list[tuple[Decimal, str]], unit: str) -> list[Figure]:
    ordered = sorted(values, key=lambda v: v[0])
    nums = [v for v, _ in ordered]
    mid = len(ordered) // 2
    middle = [ordered[mid][1]] if len(ordered) % 2 else [ordered[mid - 1][1], ordered[mid][1]]
    fmt = (lambda d: format_money(d)) if unit == "money" else (lambda d: f"{d}%")
    return [
        Figure("min", fmt(nums[0]), [n for v, n in ordered if v == nums[0]]),
        Figure("median", fmt(median(nums, CENT if unit == "money" else Decimal("0.1"))), middle),
        Figure("max", fmt(nums[-1]), [n for v, n in ordered if v == nums[-1]]),
        Figure("count", str(len(values)), [n for _, n in ordered]),
    ]


def _not_enough(answer: Answer, what: str) -> Answer:
    answer.enough = False
    answer.text = f"I don't have enough history to answer that: {what}."
    return answer


async def ask(session: AsyncSession, tenant_id: int, embedder: Embedder, question: str) -> Answer:
    question = question.strip()[:500]
    address_match = ADDRESS.search(question)
    if MARKUP.search(question):
        kind = "markup"
    elif address_match:
        kind = "visit"
    else:
        kind = "price"
    answer = Answer(question=question, kind=kind, enough=True, text="", model=embedder.model)
    if kind == "visit":
        assert address_match is not None
        return await _visit(session, tenant_id, embedder, answer, address_match)
    query = (await embedder.embed([question], "query")).vectors[0]
    hits = await store.search(session, tenant_id, embedder.model, query, k=TOP_K)
    if not hits:
        return _not_enough(answer, "billing memory holds no sent invoices or estimates yet")
    billed = await _invoices(session, tenant_id, hits)
    answer.basis = f"the {len(billed)} invoices in memory nearest the question"
    if kind == "markup":
        return await _markup(session, tenant_id, embedder, answer, billed)
    return await _price(session, tenant_id, answer, billed)


async def _price(session: AsyncSession, tenant_id: int, answer: Answer, billed: list[Billed]) -> Answer:
    terms = subject_terms(answer.question)
    answer.subject = " ".join(terms)
    if not terms:
        return _not_enough(answer, "the question names no work or part to look for")
    values: list[tuple[Decimal, str]] = []
    dated: list[tuple[date, str]] = []
    matched: dict[int, Billed] = {}
    for record in billed:
        for line in record.lines:
            if all(term_matches(t, words(line.description)) for t in terms):
                values.append((line.unit_price, record.number))
                dated.append((record.issue_date, record.number))
                matched[record.id] = record
    answer.records = await _sources(session, tenant_id, list(matched.values()))
    if len(values) < MIN_HISTORY:
        found = f"{len(values)} invoice line(s) for \u201c{answer.subject}\u201d" if values else "no invoice lines"
        return _not_enough(answer, f"I found {found}, and need at least {MIN_HISTORY}")
    answer.figures = _min_med_max(values, "money")
    _spread(answer.figures, dated)
    f = {fig.name: fig.value for fig in answer.figures}
    answer.text = (
        f"For \u201c{answer.subject}\u201d you charged {f['min']} to {f['max']} a unit, {f['median']} in the middle, "
        f"on {f['count']} invoice lines from {f['from']} to {f['to']}."
    )
    return answer


_item_vectors: dict[tuple[int, str, tuple[str, ...]], np.ndarray] = {}


async def _near_items(embedder: Embedder, tenant_id: int, items: list[Item], subject: str) -> list[Item]:
    """The items whose names the embedder finds near the subject (names embedded once per process and catalog)."""
    key = (tenant_id, embedder.model, tuple(i.name for i in items))
    names = _item_vectors.get(key)
    if names is None:
        names = (await embedder.embed([i.name for i in items], "document")).vectors
        if len(_item_vectors) > 256:
            _item_vectors.clear()
        _item_vectors[key] = names
    query = (await embedder.embed([subject], "query")).vectors[0]
    near = names @ np.asarray(query, dtype=np.float32)
    return [i for i, score in zip(items, near, strict=True) if score >= ITEM_NEARNESS]


async def _markup(
    session: AsyncSession, tenant_id: int, embedder: Embedder, answer: Answer, billed: list[Billed]
) -> Answer:
    terms = subject_terms(answer.question)
    parts_only = any(t in PART_WORDS for t in terms)
    terms = [t for t in terms if t not in PART_WORDS]
    answer.subject = " ".join(terms) + (" parts" if parts_only else "")
    items = list(
        await session.scalars(select(Item).where(Item.tenant_id == tenant_id, Item.cost.is_not(None), Item.cost > 0))
    )
    if parts_only:
        items = [i for i in items if i.kind == ItemKind.PRODUCT]
    chosen = items
    how = "every item with a cost"
    if terms:
        lexical = [i for i in items if all(term_matches(t, words(i.name)) for t in terms)]
        if lexical:
            chosen, how = lexical, "items named " + " ".join(terms)
        elif items:
            chosen = await _near_items(embedder, tenant_id, items, " ".join(terms))
            how = f"items whose names are near \u201c{' '.join(terms)}\u201d"
    by_id = {i.id: i for i in chosen}
    values: list[tuple[Decimal, str]] = []
    dated: list[tuple[date, str]] = []
    matched: dict[int, Billed] = {}
    for record in billed:
        for line in record.lines:
            item = by_id.get(line.item_id or 0)
            if item is None or item.cost is None or line.unit_price <= 0:
                continue
            markup = ((line.unit_price - item.cost) / item.cost * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
            values.append((markup, record.number))
            dated.append((record.issue_date, record.number))
            matched[record.id] = record
    answer.records = await _sources(session, tenant_id, list(matched.values()))
    counted = ", ".join(f"{i.name} (cost {format_money(i.cost)})" for i in chosen if i.cost is not None)
    answer.basis += f"; {how}: {counted or 'none'}; markup = (price − the item's cost today) ÷ cost"
    if len(values) < MIN_HISTORY:
        return _not_enough(
            answer, f"I found {len(values)} invoice line(s) of {answer.subject or 'items'} with a known cost"
        )
    answer.figures = _min_med_max(values, "percent")
    _spread(answer.figures, dated)
    f = {fig.name: fig.value for fig in answer.figures}
    answer.text = (
        f"Your markup on {answer.subject or 'items'} runs {f['min']} to {f['max']}, typically {f['median']} "
        f"(median of {f['count']} invoice lines from {f['from']} to {f['to']})."
    )
    return answer


def normal_address(text: str) -> str:
    out = []
    for w in words(text):
        out.append(SUFFIX.get(w, w))
    return " ".join(out)


async def _visit(
    session: AsyncSession, tenant_id: int, embedder: Embedder, answer: Answer, match: re.Match[str]
) -> Answer:
    wanted = normal_address(f"{match.group(1)} {match.group(2)}")
    answer.subject = match.group(0).strip()
    number = match.group(1)
    rows = await session.execute(
        select(Customer.id, Customer.service_line1, Customer.billing_line1).where(
            Customer.tenant_id == tenant_id,
            or_(Customer.service_line1.startswith(number + " "), Customer.billing_line1.startswith(number + " ")),
        )
    )
    customers = [
        cid
        for cid, service, billing in rows
        if normal_address(service or billing).startswith(wanted) or normal_address(billing).startswith(wanted)
    ]
    records: list[Invoice | Estimate] = []
    if customers:
        records += list(
            await session.scalars(
                select(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.customer_id.in_(customers))
            )
        )
        records += list(
            await session.scalars(
                select(Estimate).where(Estimate.tenant_id == tenant_id, Estimate.customer_id.in_(customers))
            )
        )
    if records:
        # Only what is in memory (sent, or backfilled): one look per record through the record's unique key.
        kept = set(
            (
                await session.execute(
                    select(MemoryVector.entity, MemoryVector.record_id).where(
                        MemoryVector.tenant_id == tenant_id,
                        MemoryVector.entity.in_(("invoice", "estimate")),
                        MemoryVector.record_id.in_([r.id for r in records]),
                        MemoryVector.model == embedder.model,
                    )
                )
            ).all()
        )
        records = [r for r in records if ("invoice" if isinstance(r, Invoice) else "estimate", r.id) in kept]
    records.sort(key=lambda r: (r.issue_date, r.id), reverse=True)
    answer.records = [_source(r) for r in records]
    answer.basis = f"the sent invoices and estimates in memory for customers at {answer.subject}"
    if not records:
        return _not_enough(answer, f"no sent invoice or estimate at {answer.subject} is in memory")
    last = records[0]
    work = ", ".join(line.description for line in last.lines) or "no lines"
    kind = "invoice" if isinstance(last, Invoice) else "estimate"
    answer.figures = [
        Figure("last visit", last.issue_date.isoformat(), [last.number]),
        Figure("last total", format_money(last.total), [last.number]),
        Figure("records", str(len(records)), [r.number for r in records]),
    ]
    answer.text = (
        f"Last time at {answer.subject}: {kind} {last.number} on {last.issue_date.isoformat()} for "
        f"{last.customer.display_name} ({work}; {format_money(last.total)})."
        + (f" {len(records)} records in all at this address." if len(records) > 1 else "")
    )
    return answer
