"""``himalia bundle`` end to end: two homes standing for the design and the production instance."""

import json
from pathlib import Path

import pytest

from ..cli.test_cli import cli_on


def test_promotion_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    design, production = cli_on(tmp_path / "design", monkeypatch), cli_on(tmp_path / "production", monkeypatch)
    design("demo")
    public_key = design("bundle", "key").output.strip()
    assert public_key.startswith("ed25519:")
    assert oct((tmp_path / "design" / "bundle-signing.key").stat().st_mode & 0o777) == "0o600"
    bundle = tmp_path / "fraud-v1.himalia-bundle"
    created = design("--as", "alice", "bundle", "create", "FRAUD", "--note", "first", "-o", str(bundle))
    assert f"wrote {bundle}" in created.output and bundle.stat().st_size > 0
    listed = json.loads(design("--json", "bundle", "list", "FRAUD").output)
    assert [(b["version"], b["origin"], b["note"]) for b in listed] == [(1, "created", "first")]

    production("group", "add", "admins", "--permission", "admin")
    production("user", "add", "ops", "--group", "admins")
    production("variables", "set", json.dumps({"company": "Production"}))  # instance variables are not bundled
    warehouse = f"sqlite:///{tmp_path / 'design-data' / 'warehouse.sqlite'}"  # the demo's, beside its home
    production("--as", "ops", "connection", "create", "prod_wh", "--type", "sql", "--url", warehouse)

    refused = production(
        "--as", "ops", "bundle", "import", str(bundle), "--map-connection", "warehouse=prod_wh", code=1
    )
    assert "manifest.sig" in refused.output and "does not trust" in refused.output
    production("bundle", "trust", "design", public_key)
    assert "design" in production("bundle", "keys").output

    unmapped = production("--as", "ops", "bundle", "import", str(bundle), "--dry-run", code=1)
    assert "warehouse" in unmapped.output and "--map-connection" in unmapped.output
    dry = production(
        "--as", "ops", "bundle", "import", str(bundle), "--map-connection", "warehouse=prod_wh", "--dry-run"
    )
    assert "added    project FRAUD" in dry.output and "nothing stored" in dry.output
    done = production(
        "--as", "ops", "bundle", "import", str(bundle), "--map-connection", "warehouse=prod_wh", "--activate"
    )
    assert "added    dataset transactions_2018" in done.output and done.output.strip().endswith("activated")
    datasets = json.loads(production("--json", "--as", "ops", "dataset", "list", "FRAUD").output)
    assert {d["connection"] for d in datasets["items"]} == {"prod_wh"}

    design("--as", "alice", "variables", "set", "--project", "FRAUD", '{"threshold": 0.95}')
    design("--as", "alice", "bundle", "create", "FRAUD", "-o", str(tmp_path / "v2"))
    second = production(
        "--as", "ops", "bundle", "import", str(tmp_path / "v2"), "--map-connection", "warehouse=prod_wh"
    )
    assert "stored, not activated" in second.output
    forward = production("--as", "ops", "bundle", "activate", "FRAUD", "2").output  # variables set replaces them all
    assert "added    variable threshold" in forward and "removed  variable report_title" in forward
    back = production("--as", "ops", "bundle", "activate", "FRAUD", "1").output
    assert "removed  variable threshold" in back and "added    variable report_title" in back
    rows = json.loads(production("--json", "bundle", "list", "FRAUD").output)
    assert [(b["version"], b["active"]) for b in rows] == [(1, True), (2, False)]
    assert "--as LOGIN" in production("bundle", "activate", "FRAUD", "1", code=1).output  # the operator has no account
    assert "chain intact" in production("audit", "verify").output
