"""``himalia apply -f``: declarative, idempotent, and every error names the file, the line and the field."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.data.manifest import ManifestError, apply_manifest, load_manifest

from ..conftest import AUDIT_KEY, SECRET_KEY

GOOD = """\
project: ALPHA
datasets:
  - name: merchants
    connection: wh
    table: merchants
    probes: [record_count, column_count, distinct_count:state]
    checks:
      - name: Columns 7
        type: in_set
        metric: column_count
        values: [7]
      - {name: Enough, type: range, metric: record_count, min: 10, soft_min: 20}
"""


def test_apply_is_idempotent(plane: ControlPlane) -> None:
    admin = plane.users.caller_for("admin")
    first = apply_manifest(plane, admin, load_manifest(GOOD, "good.yaml"))
    assert first == [
        "created dataset ALPHA/merchants",
        "created check merchants/Columns 7",
        "created check merchants/Enough",
    ]
    again = apply_manifest(plane, admin, load_manifest(GOOD, "good.yaml"))
    assert again == [
        "unchanged dataset ALPHA/merchants",
        "unchanged check merchants/Columns 7",
        "unchanged check merchants/Enough",
    ]
    changed = GOOD.replace("min: 10,", "min: 15,").replace("distinct_count:state", "top_values:state")
    assert apply_manifest(plane, admin, load_manifest(changed)) == [
        "updated dataset ALPHA/merchants",
        "unchanged check merchants/Columns 7",
        "updated check merchants/Enough",
    ]
    enough = plane.checks.get_check(admin, "ALPHA", "merchants", "Enough")
    assert (enough.min, enough.soft_min) == (15, 20)
    assert plane.checks.run_checks(admin, "ALPHA", "merchants").outcome == "OK"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("min: 10,", "min: lots,"),
            "bad.yaml:12: datasets[0].checks[1].min: Input should be a valid number",
        ),
        (GOOD.replace("    table: merchants\n", ""), "bad.yaml:3: datasets[0]: Value error, give exactly one of"),
        (GOOD.replace("project: ALPHA", "project: alpha"), "bad.yaml:1: project: String should match pattern"),
        (
            GOOD.replace("        values: [7]\n", ""),
            "bad.yaml:8: datasets[0].checks[0]: Value error, an in_set check needs 'values'",
        ),
        (GOOD.replace("    probes:", "    probs:"), "bad.yaml:6: datasets[0].probs: Extra inputs are not permitted"),
        ("project: ALPHA\ndatasets: [\n", "bad.yaml:3: not valid YAML"),
        ("", "bad.yaml: the file is empty"),
    ],
)
def test_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as error:
        load_manifest(text, "bad.yaml")
    assert error.value.message.startswith(message), error.value.message


def test_moving_a_dataset_and_bad_references_are_refused(plane: ControlPlane) -> None:
    admin = plane.users.caller_for("admin")
    apply_manifest(plane, admin, load_manifest(GOOD))
    with pytest.raises(ManifestError, match=r"datasets\[0\] \(merchants\): its table differ"):
        apply_manifest(
            plane, admin, load_manifest(GOOD.replace("table: merchants", "table: transactions_2018"), "m.yaml")
        )
    with pytest.raises(ManifestError, match="no column 'nope'"):
        apply_manifest(plane, admin, load_manifest(GOOD.replace("distinct_count:state", "avg:nope")))


def test_cli_apply(plane: ControlPlane, tmp_path: Path) -> None:
    manifest = tmp_path / "alpha.yaml"
    manifest.write_text(GOOD)
    runner = CliRunner()
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}
    base = ["--home", plane.home, "--db-url", plane.db.url, "--as", "contributor", "apply", "-f", str(manifest)]
    applied = runner.invoke(main, base, env=environment)
    assert applied.exit_code == 0 and "created check merchants/Enough" in applied.output
    manifest.write_text(GOOD.replace("min: 10,", "min: lots,"))
    refused = runner.invoke(main, base, env=environment)
    assert refused.exit_code == 1
    assert f"{manifest}:12: datasets[0].checks[1].min" in refused.output
