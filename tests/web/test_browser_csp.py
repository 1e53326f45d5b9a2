"""Issue 14 item 8 in a real browser: the hub's pages run under its Content-Security-Policy without one refusal,
an inline script is refused, and no other site can frame the hub.

Serves the app with uvicorn on a free port (browser.serve_hub) and drives Debian's Chromium; every console
error and securitypolicyviolation event of every page is collected (browser.watch_errors).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import make_business
from tests.web import browser

from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.invoices import service as invoices
from fieldhub.core.items.service import create_item
from fieldhub.core.jobs import service as jobs

pytestmark = pytest.mark.browser


async def _prepare(session: Any) -> dict[str, Any]:
    biz = await make_business(session, "csp")
    customer = await create_customer(session, biz.tenant.id, {"display_name": "Ada", "email": "ada@example.com"})
    item = await create_item(session, biz.tenant.id, {"name": "Valve", "unit_price": "12.50"})
    line = {"description": "Repair", "unit_price": "149.50"}
    invoice = await invoices.create_invoice(session, biz.tenant.id, {"customer_id": customer.id, "lines": [line]})
    estimate = await estimates.create_estimate(
        session, biz.tenant.id, {"customer_id": customer.id, "lines": [{**line, "quantity": "1"}]}
    )
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    job = await jobs.create_job(
        session,
        biz.tenant.id,
        {
            "customer_id": customer.id,
            "title": "Fix the leak",
            "scheduled_start": start,
            "scheduled_end": start + timedelta(hours=1),
            "technician_ids": [biz.tech.id],
        },
    )
    await session.commit()
    return {
        "owner": biz.owner.email,
        "pages": [
            "/",
            "/customers",
            f"/customers/{customer.id}",
            "/customers/new",
            "/items",
            f"/items/{item.id}",
            "/invoices",
            f"/invoices/{invoice.id}",
            f"/invoices/{invoice.id}/edit",
            f"/invoices/{invoice.id}/print",
            "/invoices/new",
            "/estimates",
            f"/estimates/{estimate.id}",
            "/schedule",
            f"/schedule/jobs/{job.id}",
            "/schedule/jobs/new",
            "/settings",
            "/settings/integrations",
            "/settings/integrations/quickbooks",
            "/settings/integrations/calendar",
            "/settings/integrations/accounting",
            "/notifications",
        ],
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    with browser.serve_hub(tmp_path_factory.mktemp("csp"), _prepare) as (base, made, _):
        yield base, made


@pytest.fixture(scope="module")
def chromium(served):  # noqa: ANN001, ANN201 - playwright types
    with browser.chromium() as launched:
        yield launched


def test_issue14_item8_main_pages_break_no_rule_of_the_policy(served, chromium) -> None:  # noqa: ANN001
    base, made = served
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    errors = browser.watch_errors(context)
    signed_out = context.new_page()
    signed_out.goto(f"{base}/login")
    assert signed_out.evaluate("window.__violations") == []
    signed_out.close()

    page = browser.login(context, base, made["owner"], "/")
    for path in made["pages"]:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert page.evaluate("window.__violations") == [], path
    assert errors == []

    # The watch can see a refusal: an inline script added to a page is refused, and reported.
    ran = page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = true';"
        " document.body.appendChild(s); return window.__ran === true; }"
    )
    page.wait_for_timeout(200)
    assert ran is False
    assert any("script-src" in v for v in page.evaluate("window.__violations"))
    assert any("Content Security Policy" in e for e in errors), errors
    context.close()


def test_issue14_item8_no_other_site_can_frame_the_hub(served, chromium) -> None:  # noqa: ANN001
    base, _ = served
    context = chromium.new_context()
    page = context.new_page()
    page.set_content(f'<iframe id="hub" src="{base}/login" width="400" height="300"></iframe>')
    page.wait_for_timeout(1500)
    framed = next(f for f in page.frames if f != page.main_frame)
    text = framed.evaluate("document.body ? document.body.innerText : ''")
    assert "Log in to your business" not in text  # Chromium shows its own refusal instead of the form
    context.close()
