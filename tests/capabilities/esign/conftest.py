"""An estimate ready to send, a connected signing service, and its emulator delivering webhooks into the app."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fieldhub.core.customers.service import create_customer
from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import Estimate
from fieldhub.core.items.service import create_tax_rate
from fieldhub.hub.connections.models import Connection
from tests.hub.oauth.conftest import consent


@dataclass
class Setup:
    estimate: Estimate
    conn: Connection
    emulator: Any
    app: Any
    emails: dict[str, str]
    tech_id: int

    def __post_init__(self) -> None:
        # Read now: the tests expire the session's objects to see what the app committed.
        self.estimate_id, self.tenant_id, self.number = self.estimate.id, self.estimate.tenant_id, self.estimate.number
        self.customer_id, self.conn_id = self.estimate.customer_id, self.conn.id


async def connect(owner, session, app, key: str) -> tuple[Connection, Any]:
    r, _ = await consent(owner, key)
    assert r.status_code == 303, r.text
    session.expire_all()
    conn = await session.scalar(select(Connection).where(Connection.provider == key))
    emulator = app.state.endpoints.emulators[key]
    # Webhooks go into this app in-process (there is no socket in these tests).
    sender(emulator).transport = httpx.ASGITransport(app=app)
    return conn, emulator


async def new_estimate(session, tenant_id: int, email: str = "kj@example.com") -> Estimate:
    customer = await create_customer(session, tenant_id, {"display_name": "Katherine Johnson", "email": email})
    rate = await create_tax_rate(session, tenant_id, {"name": "City", "rate": "10"})
    est = await estimates.create_estimate(
        session,
        tenant_id,
        {
            "customer_id": customer.id,
            "tax_rate_id": rate.id,
            "lines": [{"description": "Replace water heater", "quantity": "1", "unit_price": "1450", "taxable": True}],
        },
    )
    await session.commit()
    await session.refresh(est)
    return est


@pytest.fixture
async def docusign(owner, session, app, biz) -> Setup:
    tenant_id, emails, tech_id = biz.tenant.id, staff(biz), biz.tech.id
    conn, emulator = await connect(owner, session, app, "docusign")
    return Setup(await new_estimate(session, tenant_id), conn, emulator, app, emails, tech_id)


def staff(biz) -> dict[str, str]:
    return {"admin": biz.admin.email, "dispatcher": biz.dispatcher.email, "tech": biz.tech.email}


def sender(emulator: Any) -> Any:
    """The emulator's webhook sender: DocuSign's Connect, Dropbox Sign's callbacks."""
    return getattr(emulator, "connect", None) or emulator.callbacks


@pytest.fixture
async def dropbox_sign(owner, session, app, biz) -> Setup:
    tenant_id, emails, tech_id = biz.tenant.id, staff(biz), biz.tech.id
    conn, emulator = await connect(owner, session, app, "dropbox_sign")
    return Setup(await new_estimate(session, tenant_id), conn, emulator, app, emails, tech_id)


async def submit_form(browser: httpx.AsyncClient, page: httpx.Response, field: str, value: str) -> httpx.Response:
    """Submit the form of `page` that holds `field`, as a browser would (its hidden inputs and action kept)."""
    for form in re.findall(r"<form[^>]*>.*?</form>", page.text, re.S):
        if f"name={field}" not in form and f'name="{field}"' not in form:
            continue
        action = re.search(r'action="([^"]+)"', form).group(1)
        data = dict(re.findall(r'<input type=hidden name=(\w+) value="([^"]*)"', form))
        data[field] = value
        return await browser.post(action, data=data)
    raise AssertionError(f"no form with {field} on the page")


async def follow_signing(app, url: str) -> tuple[httpx.AsyncClient, httpx.Response]:
    """A signer's browser on the emulator's signing page (mounted in the app)."""
    browser = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", follow_redirects=True
    )
    page = await browser.get(url)
    assert page.status_code == 200, page.text
    return browser, page


def form_token(page: httpx.Response) -> str:
    return re.search(r'name=ti value="([^"]+)"', page.text).group(1)
