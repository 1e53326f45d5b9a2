"""Pay Now in a real browser: a sent invoice's pay link, the Stripe emulator's checkout paid with 4242…, the success
page, and the invoice PAID within a second (the signed webhook goes over the network to the served hub)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import select
from tests.conftest import TEST_KEYS, make_business
from tests.web.test_browser_connect import CHROMIUM, CHROMIUM_ARGS, _free_port

from fieldhub.core.customers.service import create_customer
from fieldhub.core.invoices import service as invoices
from fieldhub.core.invoices.models import Invoice, InvoiceStatus
from fieldhub.core.payments.models import Payment, PaymentStatus
from fieldhub.db import make_engine, make_sessionmaker
from fieldhub.hub.connections.service import AccountInfo, TokenSet, save_connected
from fieldhub.hub.vault import ensure_demo_key
from fieldhub.main import create_app
from fieldhub.models import metadata
from fieldhub.settings import Settings

pytestmark = pytest.mark.browser
SUMMIT = "acct_1SummitPlumbing0"


async def _prepare(settings: Settings) -> tuple[int, str]:
    engine = make_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with make_sessionmaker(engine)() as session:
        biz = await make_business(session, "pay")
        # Connected as the OAuth callback would leave it (the connect itself has its own tests).
        await save_connected(
            session,
            ensure_demo_key(settings),
            tenant_id=biz.tenant.id,
            provider="stripe",
            account=AccountInfo(SUMMIT, "Summit Plumbing & Heating"),
            tokens=TokenSet(SUMMIT),
        )
        customer = await create_customer(session, biz.tenant.id, {"display_name": "Pat Customer"})
        invoice = await invoices.create_invoice(
            session,
            biz.tenant.id,
            {"customer_id": customer.id, "lines": [{"description": "Repair", "unit_price": "149.50"}]},
        )
        await invoices.send_invoice(session, biz.tenant.id, invoice.id)
        await session.commit()
        result = invoice.id, invoice.public_token
    await engine.dispose()
    return result


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings, int, str]]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('pay') / 'hub.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(mode="test", database_url=url, encryption_keys=TEST_KEYS, public_url=base)
    invoice_id, token = asyncio.run(_prepare(settings))
    app = create_app(settings)
    app.state.endpoints.emulators["stripe"].connected.add(SUMMIT)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    import threading

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield base, settings, invoice_id, token
    server.should_exit = True
    thread.join(10)


async def _state(settings: Settings, invoice_id: int) -> tuple[str, list[str]]:
    engine = make_engine(settings.database_url)
    async with make_sessionmaker(engine)() as s:
        invoice = await s.get(Invoice, invoice_id)
        payments = list(await s.scalars(select(Payment).where(Payment.invoice_id == invoice_id)))
        result = str(invoice.status), [str(p.status) for p in payments]
    await engine.dispose()
    return result


def test_pay_link_checkout_success_and_paid_within_a_second(served) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    base, settings, invoice_id, token = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/pay/{token}")
        page.wait_for_url(f"{base}/emulators/stripe/c/pay/cs_test_*")
        assert "$149.50" in page.inner_text("#pay")
        page.fill("#email", "pat@example.com")
        page.fill("#cardnumber", "4242 4242 4242 4242")
        page.click("#pay")
        page.wait_for_url(re.compile(re.escape(f"{base}/pay/{token}/done?session_id=cs_test_") + r"\w+$"))
        paid_at = time.monotonic()
        assert "Thank you" in page.inner_text("h1")
        browser.close()
    while True:
        status, payments = asyncio.run(_state(settings, invoice_id))
        if status == InvoiceStatus.PAID or time.monotonic() - paid_at > 1.0:
            break
        time.sleep(0.05)
    assert status == InvoiceStatus.PAID, f"still {status} one second after the success page"
    assert payments == [PaymentStatus.SUCCEEDED]
