"""Issue 15, the spec check: emulators record their replies; a run validates each shape once, fails on invalid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fieldhub.hub.emulator import EmulatorConfig, speccheck
from fieldhub.providers.quickbooks.emulator import US_REALM, create_emulator
from fieldhub.providers.quickbooks.emulator.xsd import find_specs_dir
from fieldhub.providers.stripe.emulator import StripeEmulator
from fieldhub.providers.stripe.emulator.spec import find_spec
from tests.providers.quickbooks.conftest import QBO, connect

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    find_specs_dir(ROOT) is None or find_spec(ROOT) is None, reason="shared/specs (QBO XSDs, Stripe spec3) not found"
)
SELF_TEST = "FIELDHUB_SPECCHECK_SELF_TEST"


async def qbo_traffic(folder: Path, monkeypatch: pytest.MonkeyPatch, *, corrupt: bool) -> None:
    """Valid replies, twice the same shape, one reply of QBO's gateway and, if asked, one the XSD refuses."""
    monkeypatch.setenv(speccheck.ENV, str(folder))
    emulator = create_emulator(EmulatorConfig(hub_url="http://hub.test", deliver_webhooks=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://qbo.test") as http:
        tokens = await connect(http)
        qbo = QBO(http, US_REALM, tokens["access_token"])
        for _ in range(2):
            assert (await qbo.get("customer/1")).status_code == 200
        assert (await qbo.query("SELECT * FROM Customer WHERE Bogus = 'x'")).status_code == 400
        assert (await QBO(http, US_REALM, "expired").get("customer/1")).status_code == 401
        if corrupt:
            emulator.companies[US_REALM].objects["Customer"]["2"]["Active"] = "maybe"
            assert (await qbo.get("customer/2")).status_code == 200


def recorded(folder: Path) -> tuple[list[str], list[str]]:
    files = sorted(folder.glob("*.jsonl"))
    return [f.name for f in files], [line for f in files for line in f.read_text().splitlines()]


async def test_issue15_item9_spec_check_counts_every_reply_and_names_an_invalid_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await qbo_traffic(tmp_path, monkeypatch, corrupt=True)
    stripe = StripeEmulator(EmulatorConfig(hub_url="http://hub.test", client_secret="sk_test_x"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stripe), base_url="http://stripe.test") as http:
        assert (await http.get("/v1/balance")).status_code == 401  # no key: Stripe's error object
        assert (await http.get("/v1/balance", headers={"Authorization": "Bearer sk_test_x"})).status_code == 200
        token = await http.post("/oauth/token", data={"grant_type": "authorization_code", "code": "nope"})
        assert token.status_code in (400, 401) and token.json()["error"]  # Connect OAuth: not in spec3

    files, lines = recorded(tmp_path)
    assert files == [f"{os.getpid()}.jsonl"]
    assert sum('"b":' in line for line in lines) < len(lines)  # the second GET of customer 1 carries no body

    report = speccheck.check(tmp_path)
    qbo, stripe_tally = report.tallies
    assert (qbo.label, qbo.valid, qbo.checked) == ("QBO", 3, 4)
    assert qbo.outside == 2  # the token reply and the gateway's 401
    assert (stripe_tally.label, stripe_tally.valid, stripe_tally.checked, stripe_tally.outside) == ("Stripe", 2, 2, 1)
    replies = qbo.checked + qbo.outside + stripe_tally.checked + stripe_tally.outside
    assert not report.ok and report.shapes == replies - 1  # customer 1's second GET: the same shape
    assert len(qbo.problems) == 1
    assert qbo.problems[0].startswith(f"QBO GET /v3/company/{US_REALM}/customer/2 -> 200: ")
    assert "maybe" in qbo.problems[0]
    text = "\n".join(report.lines())
    assert text.startswith("emulator replies checked against specs: QBO 3 valid / 4, Stripe 2 valid / 2")
    assert f"INVALID QBO GET /v3/company/{US_REALM}/customer/2" in text


async def test_issue15_item9_spec_check_nothing_recorded_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(speccheck.ENV, raising=False)
    speccheck.record("quickbooks", "GET", "/v3/company/1/customer/1", 200, "application/json", b"{}")
    assert speccheck.check(tmp_path).lines() == []


async def test_reply_the_spec_check_must_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run only by the next test, in its own pytest: an invalid reply in a run whose tests all pass."""
    if not os.environ.get(SELF_TEST):
        pytest.skip("run by test_issue15_item9_spec_check_fails_the_run_on_an_invalid_reply")
    monkeypatch.undo()  # record into the run's own folder
    await qbo_traffic(Path(os.environ[speccheck.ENV]), monkeypatch, corrupt=True)


def test_issue15_item9_spec_check_fails_the_run_on_an_invalid_reply() -> None:
    env = {k: v for k, v in os.environ.items() if k != speccheck.ENV}
    env.update({SELF_TEST: "1", "FIELDHUB_TEST_BACKENDS": "sqlite"})
    node = f"{Path(__file__).relative_to(ROOT)}::test_reply_the_spec_check_must_refuse"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    assert "emulator replies checked against specs: QBO 3 valid / 4" in run.stdout
    assert f"INVALID QBO GET /v3/company/{US_REALM}/customer/2 -> 200" in run.stdout
