"""`fieldhub check`: passes on the repo; fails on a tree whose shared code names a provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fieldhub.cli import app
from fieldhub.hub.check import SRC_ROOT, run

TOML = """key = "{key}"
name = "{name}"
card = "{key}"
category = "leads"
icon = "star"
brand_color = "#123456"
description = "A test provider."
hub_order = {order}

[auth]
mode = "api_key"
api_key_in = "bearer"

[api]
base_url = "https://api.{key}.example.com"

[health]
url = "/me"
"""
README = "# {name}\n\n## Register the app\n\nA key.\n\n## Limits\n\nNone.\n\n## Quirks\n\nNone.\n"


def make_provider(src: Path, key: str, order: int, emulator: bool = True) -> Path:
    folder = src / "providers" / key
    folder.mkdir(parents=True)
    (folder / "provider.toml").write_text(TOML.format(key=key, name=key.title(), order=order))
    (folder / "__init__.py").write_text(f'"""{key}."""\n')
    (folder / "README.md").write_text(README.format(name=key.title()))
    if emulator:
        (folder / "emulator").mkdir()
        (folder / "emulator" / "__init__.py").write_text('"""Emulator."""\n')
    return folder


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A small fieldhub source tree: two providers and some shared code that names none."""
    root = tmp_path / "fieldhub"
    (root / "providers").mkdir(parents=True)
    (root / "providers" / "__init__.py").write_text('"""Providers."""\n')
    make_provider(root, "acme_leads", 10)
    make_provider(root, "zed_leads", 20)
    icons = root / "web" / "static" / "vendor" / "lucide"
    icons.mkdir(parents=True)
    (icons / "star.svg").write_text("<svg></svg>")
    (root / "hub").mkdir()
    (root / "hub" / "engine.py").write_text(
        '"""Runs any provider (acme_leads in the docstring is fine)."""\n\ndef run(spec):\n    return spec.key\n'
    )
    (root / "web" / "templates").mkdir(parents=True)
    (root / "web" / "templates" / "page.html").write_text("<a href='/settings/integrations/{{ card.key }}'>x</a>\n")
    return root


def test_the_repository_passes() -> None:
    report = run(SRC_ROOT)
    assert report.ok, [f"{f.where}: {f.message}" for f in report.errors]
    assert report.providers == 15 and report.cards == 9


def test_the_cli_exits_zero_on_the_repository() -> None:
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert "15 providers" in result.output


def test_a_clean_tree_passes(src: Path) -> None:
    report = run(src, require_emulators=True)
    assert report.ok, report.findings
    assert report.findings == []


@pytest.mark.parametrize(
    ("file", "code", "kind"),
    [
        ("hub/engine.py", 'def run(spec):\n    if spec.key == "acme_leads":\n        return 1\n', "string literal"),
        ("hub/engine.py", "def run(spec):\n    acme_leads_client = spec\n", "identifier"),
        ("core/thing.py", "from fieldhub.providers.zed_leads import hooks\n", "import"),
        ("web/templates/page.html", '<a href="/settings/integrations/zed_leads">Zed</a>\n', "text"),
        ("cli.py", 'URL = "/webhooks/acme_leads"\n', "string literal"),
    ],
)
def test_shared_code_naming_a_provider_fails(src: Path, file: str, code: str, kind: str) -> None:
    path = src / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    report = run(src)
    assert not report.ok
    assert any(file in f.where and f"({kind})" in f.message for f in report.errors), report.errors


def test_lookalike_words_are_not_provider_names(src: Path) -> None:
    (src / "hub" / "engine.py").write_text('NAMES = ["acme_leadsx", "Acme_Leads", "acme"]\nacme_lead = 1\n')
    assert run(src).ok


def test_a_provider_importing_another_fails(src: Path) -> None:
    hooks = src / "providers" / "acme_leads" / "hooks.py"
    hooks.write_text("from ..zed_leads import mapping\nfrom fieldhub.providers.acme_leads import emulator\n")
    report = run(src)
    errors = [f for f in report.errors if "imports provider" in f.message]
    assert len(errors) == 1 and "'acme_leads' imports provider 'zed_leads'" in errors[0].message
    hooks.write_text("import importlib\nmod = importlib.import_module('fieldhub.providers.zed_leads.client')\n")
    assert any("imports provider 'zed_leads'" in f.message for f in run(src).errors)


def test_missing_files_and_emulators(src: Path) -> None:
    folder = src / "providers" / "zed_leads"
    (folder / "README.md").unlink()
    shutil.rmtree(folder / "emulator")
    report = run(src)
    assert [f.message for f in report.errors] == ["missing README.md"]
    assert any("missing emulator/" in f.message for f in report.warnings)
    strict = run(src, require_emulators=True)
    assert any("missing emulator/" in f.message for f in strict.errors)


def test_a_broken_toml_and_an_unvendored_icon_fail(src: Path) -> None:
    toml = src / "providers" / "zed_leads" / "provider.toml"
    toml.write_text(toml.read_text().replace('icon = "star"', 'icon = "rocket"'))
    assert any("icon 'rocket' is not vendored" in f.message for f in run(src).errors)
    toml.write_text(toml.read_text() + "surprise = 1\n")
    assert any("surprise: unknown key" in f.message for f in run(src).errors)


def test_readme_sections_and_callback(src: Path) -> None:
    readme = src / "providers" / "acme_leads" / "README.md"
    readme.write_text("# Acme\n\n## Register the app\n\n## Limits\n")
    assert any("needs a '## Quirks…' section" in f.message for f in run(src).errors)


ENTITY = '\n[entities.lead]\nremote = "Lead"\ndirection = "both"\nconflict = "remote_wins"\n'


def test_issue14_item4_a_declared_direction_needs_its_implementation(src: Path) -> None:
    """A provider can't claim records it doesn't move: each declared direction needs the code the hub calls."""
    folder = src / "providers" / "acme_leads"
    toml = folder / "provider.toml"
    toml.write_text(toml.read_text() + ENTITY)
    errors = [f.message for f in run(src).errors]
    assert len(errors) == 2, errors
    assert "[entities.lead] declares direction = 'both' but nothing sends lead records" in errors[0]
    assert "nothing brings in lead records" in errors[1]

    # Events that bring leads in: the import half is built, the export half still is not.
    (folder / "webhooks.py").write_text('IMPORTS = ("lead",)\n\nasync def handle(ctx):\n    return True\n')
    errors = [f.message for f in run(src).errors]
    assert len(errors) == 1 and "nothing sends lead records" in errors[0]

    # An adapter without the entity in EXPORTS doesn't count; with it (a dict's keys, read statically), it does.
    sync = folder / "sync.py"
    adapter = "\n\ndef create_adapter(connection, client, settings):\n    pass\n"
    sync.write_text('REMOTE = {"customer": "Client"}\nEXPORTS = tuple(REMOTE)' + adapter)
    assert any("nothing sends lead records" in f.message for f in run(src).errors)
    sync.write_text(sync.read_text().replace('{"customer": "Client"}', '{"customer": "Client", "lead": "Lead"}'))
    assert run(src).ok, run(src).errors

    # EXPORTS without the function the hub calls is not an implementation either.
    sync.write_text('EXPORTS = ("lead",)\n')
    assert any("has no create_adapter()" in f.message for f in run(src).errors)


def test_issue14_item4_a_planned_entity_needs_nothing(src: Path) -> None:
    toml = src / "providers" / "acme_leads" / "provider.toml"
    toml.write_text(toml.read_text() + ENTITY + "planned = true\n")
    assert run(src).ok, run(src).errors


def test_issue14_item4_stripe_claiming_two_way_refunds_fails(tmp_path: Path) -> None:
    """The repository's own case: Stripe declared refunds both ways with no export adapter."""
    root = tmp_path / "fieldhub"
    shutil.copytree(SRC_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "emulator", "static", "templates"))
    icons = root / "web" / "static" / "vendor" / "lucide"
    shutil.copytree(SRC_ROOT / "web" / "static" / "vendor" / "lucide", icons)
    toml = root / "providers" / "stripe" / "provider.toml"
    text = toml.read_text()
    assert 'remote = "Refund"\ndirection = "import"\n' in text
    refund = 'remote = "Refund"\ndirection = "both"\nconflict = "remote_wins"\n'
    toml.write_text(text.replace('remote = "Refund"\ndirection = "import"\n', refund))
    errors = [f"{f.where}: {f.message}" for f in run(root).errors]
    assert errors == [
        "fieldhub/providers/stripe/provider.toml: [entities.refund] declares direction = 'both' but nothing sends "
        "refund records: add 'refund' to EXPORTS in sync.py beside create_adapter, or mark it planned = true"
    ]


def test_issue15_item2_a_provider_that_signs_in_needs_a_health_check(src: Path) -> None:
    """Without a cheap call to check it, a grant revoked at the provider would read Connected for ever."""
    folder = src / "providers" / "acme_leads"
    toml = folder / "provider.toml"
    toml.write_text(toml.read_text().replace('[health]\nurl = "/me"\n', ""))
    errors = [f"{f.where}: {f.message}" for f in run(src).errors]
    assert errors == [
        "fieldhub/providers/acme_leads/provider.toml: declares no health check: add [health] url = a cheap "
        "authenticated call (userinfo, /me), or hooks.check_health"
    ]
    # An API key's verify_key (what checked it at connect) is its health check too.
    (folder / "hooks.py").write_text("async def verify_key(spec, env, http, key):\n    return None\n")
    assert run(src).ok, run(src).errors


def test_issue15_item1_a_planned_entity_whose_code_is_there_fails(src: Path) -> None:
    """The ledger reads the planned mark, the pages read the code: check keeps them saying the same."""
    folder = src / "providers" / "acme_leads"
    toml = folder / "provider.toml"
    toml.write_text(toml.read_text() + '\n[entities.lead]\nremote = "Lead"\ndirection = "import"\nplanned = true\n')
    assert run(src).ok
    (folder / "webhooks.py").write_text('IMPORTS = ("lead",)\n\nasync def handle(ctx):\n    return True\n')
    errors = [f.message for f in run(src).errors]
    assert errors == ["[entities.lead] is marked planned = true but its code is there: drop planned"]
