"""Estimate pages: list, create with lines, errors beside fields, status actions, 404 for another business."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import Estimate, EstimateStatus
from fieldhub.core.items.service import create_item, create_tax_rate


@pytest.fixture
async def stock(session, biz):
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Katherine Johnson"})
    item = await create_item(session, biz.tenant.id, {"name": "Faucet", "unit_price": "120.00", "taxable": True})
    rate = await create_tax_rate(session, biz.tenant.id, {"name": "City", "rate": "10"})
    await session.commit()
    return customer, item, rate


def _form(customer, item, rate, **rows):
    data = {
        "customer_id": str(customer.id),
        "tax_rate_id": str(rate.id),
        "line_count": "3",
        "lines-0-item_id": str(item.id),
        "lines-0-quantity": "2",
        "lines-1-description": "Labour",
        "lines-1-quantity": "1.5",
        "lines-1-unit_price": "80",
        "lines-1-taxable": "false",
        "lines-2-quantity": "1",  # an empty row: ignored
    }
    return {**data, **rows}


async def test_create_view_and_act(owner, session, biz, stock):
    customer, item, rate = stock
    assert (await owner.get("/estimates")).status_code == 200
    assert "Faucet" in (await owner.get("/estimates/new")).text
    r = await owner.submit("/estimates/new", _form(*stock))
    assert r.status_code == 303, r.text
    est = await session.scalar(select(Estimate))
    # 240.00 + 120.00; tax 10 % of the taxable 240.00.
    assert (est.subtotal, est.tax_total, est.total) == (Decimal("360.00"), Decimal("24.00"), Decimal("384.00"))
    page = await owner.get(r.headers["location"])
    assert "EST-1001" in page.text and "$384.00" in page.text and "Estimate created." in page.text
    listing = await owner.get("/estimates?status=draft")
    assert "EST-1001" in listing.text
    assert "EST-1001" not in (await owner.get("/estimates?status=approved")).text

    assert (await owner.submit(f"/estimates/{est.id}/approve")).status_code == 400  # a draft can't be approved
    assert (await owner.submit(f"/estimates/{est.id}/send")).status_code == 303
    assert (await owner.submit(f"/estimates/{est.id}/approve")).status_code == 303
    await session.refresh(est)
    assert est.status == EstimateStatus.APPROVED
    # An approved estimate is no longer editable.
    edit = await owner.get(f"/estimates/{est.id}/edit")
    assert edit.status_code == 303
    r = await owner.submit(f"/estimates/{est.id}/edit", _form(*stock, memo="changed"))
    assert r.status_code == 400 and "can&#39;t be changed" in r.text


async def test_errors_next_to_fields_and_nothing_saved(owner, session, stock):
    r = await owner.submit(
        "/estimates/new",
        _form(*stock, **{"lines-0-quantity": "-1", "lines-1-unit_price": "", "lines-1-item_id": "", "customer_id": ""}),
    )
    assert r.status_code == 400
    assert 'id="e-customer_id"' in r.text
    assert 'id="e-lines-0-quantity"' in r.text
    assert await session.scalar(select(func.count()).select_from(Estimate)) == 0


async def test_edit_and_add_line(owner, session, biz, stock):
    customer, item, rate = stock
    est = await estimates.create_estimate(
        session, biz.tenant.id, {"customer_id": customer.id, "lines": [{"item_id": item.id, "quantity": "1"}]}
    )
    await session.commit()
    edit = await owner.get(f"/estimates/{est.id}/edit")
    assert 'name="line_count" value="2"' in edit.text
    more = await owner.submit(f"/estimates/{est.id}/edit", _form(*stock, add_line="1"))
    assert 'name="line_count" value="4"' in more.text
    r = await owner.submit(f"/estimates/{est.id}/edit", _form(*stock))
    assert r.status_code == 303
    await session.refresh(est)
    assert est.version == 2 and len(est.lines) == 2


async def test_another_business_gets_404(owner, session, other_biz):
    theirs = await create_customer(session, other_biz.tenant.id, {"display_name": "Theirs"})
    est = await estimates.create_estimate(
        session,
        other_biz.tenant.id,
        {"customer_id": theirs.id, "lines": [{"description": "Secret", "quantity": "1", "unit_price": "9"}]},
    )
    await session.commit()
    assert (await owner.get(f"/estimates/{est.id}")).status_code == 404
    assert (await owner.get(f"/estimates/{est.id}/edit")).status_code == 404
    assert (await owner.submit(f"/estimates/{est.id}/send")).status_code == 404
    assert "Secret" not in (await owner.get("/estimates")).text
    assert await session.scalar(select(Estimate.status).where(Estimate.id == est.id)) == EstimateStatus.DRAFT


async def test_issue20_item1_estimate_pdf(owner, session, biz, stock, other_biz, make_client):
    import io

    from pypdf import PdfReader

    from fieldhub.core.estimates.pdf import SIGNATURE_ANCHOR

    customer, item, rate = stock
    customer.email = "kj@example.com"
    est = await estimates.create_estimate(
        session,
        biz.tenant.id,
        {
            "customer_id": customer.id,
            "tax_rate_id": rate.id,
            "memo": "Thanks for having us out, Łukasz says hi.",
            "lines": [
                {"item_id": item.id, "quantity": "2"},
                {"description": "Labour " * 40, "quantity": "1.5", "unit_price": "80"},
            ],
        },
    )
    await session.commit()
    page = await owner.get(f"/estimates/{est.id}")
    assert f'href="/estimates/{est.id}.pdf"' in page.text
    r = await owner.get(f"/estimates/{est.id}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert 'filename="Estimate EST-1001.pdf"' in r.headers["content-disposition"]
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    for expected in (
        biz.tenant.name,
        "Katherine Johnson",
        "kj@example.com",
        "Faucet",
        "Labour",
        "$240.00",
        "$120.00",
        "City (10 %)",
        "$24.00",
        "$384.00",
        "Łukasz",
        "By signing below",
        SIGNATURE_ANCHOR,
        "EST-1001",
    ):
        assert expected in text, expected
    # Another business's estimate is a 404.
    async with make_client() as other:
        await other.login(other_biz.owner.email)
        assert (await other.get(f"/estimates/{est.id}.pdf")).status_code == 404
