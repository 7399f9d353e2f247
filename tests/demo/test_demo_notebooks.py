"""The demo notebooks, run by papermill in a real kernel against a live API, and the demo's mail sink."""

import smtplib
import sqlite3
import subprocess
import sys
from datetime import date
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import papermill as pm
import pytest

from himalia.controlplane import ControlPlane
from himalia.demo.mailsink import start_mailsink
from himalia.demo.seed import data_folder, seed
from himalia.identity.caller import Caller
from himalia.kernel import client as kernel_client
from himalia.wire.data import CreateDataset, UpdateConnection
from himalia.wire.identity import CreateToken

from ..conftest import LiveAPI

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PREPARE, SCORE = NOTEBOOKS / "prepare.ipynb", NOTEBOOKS / "score.ipynb"
PREPARED_COLUMNS = [  # the training's prepared dataset, which the demo's checks read
    "transaction_id",
    "card_id",
    "purchase_date",
    "purchase_amount",
    "authorized_flag",
    "item_category",
    "merchant_state",
    "card_fico_score",
]


@pytest.fixture
def backend() -> str:
    """SQLite only: the subject is the notebooks; the store's backends are covered elsewhere."""
    return "sqlite"


@pytest.fixture
def warehouse(plane: ControlPlane, api: LiveAPI, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeded demo with a writable warehouse connection; kernels act as bob in FRAUD."""
    assert "created project FRAUD" in list(seed(plane))
    alice = plane.users.caller_for("alice")
    plane.connections.update_connection(alice, "warehouse", UpdateConnection(allow_write=True))
    bob = plane.tokens.create_token(Caller.operator("test"), CreateToken(user="bob", name="notebooks")).token
    monkeypatch.setenv("HIMALIA_API_URL", api.base)
    monkeypatch.setenv("HIMALIA_TOKEN", bob)  # an analyst: a contributor of FRAUD, not its owner
    monkeypatch.setenv("HIMALIA_PROJECT", "FRAUD")
    monkeypatch.delenv("HIMALIA_RUN_ID", raising=False)
    kernel_client.client.cache_clear()
    return data_folder(plane.home) / "warehouse.sqlite"


def metric(plane: ControlPlane, name: str) -> list[tuple[Any, str | None, str]]:
    history = plane.metrics.history(plane.users.caller_for("alice"), "FRAUD", metric=name)
    return [(v.value, v.dataset, v.actor) for v in history]


def run(notebook: Path, output: Path, **parameters: Any) -> nbformat.NotebookNode:
    executed: nbformat.NotebookNode = pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(NOTEBOOKS),
        execution_timeout=60,
    )
    return executed


def test_prepare_then_score_against_the_live_api(warehouse: Path, plane: ControlPlane, tmp_path: Path) -> None:
    # 2031-06-14 is not in the 2018 data: both notebooks map it onto 2018-06-14 (35 transactions)
    run(PREPARE, tmp_path / "prepare.ipynb", day="2031-06-14")
    with sqlite3.connect(warehouse) as db:
        prepared = pd.read_sql("SELECT * FROM transactions_joined_prepared", db)
    assert len(prepared) == 12_000 and prepared.columns[:8].tolist() == PREPARED_COLUMNS
    assert {"merchant_subsector", "foreign_ip", "purchase_day"} <= set(prepared.columns)
    assert prepared["card_fico_score"].notna().all()
    alice = plane.users.caller_for("alice")
    described = plane.datasets.get_dataset(alice, "FRAUD", "transactions_joined_prepared")
    assert "merchant_subsector" in [c.name for c in described.columns or []]  # write_pandas refreshed the schema
    assert plane.checks.run_checks(alice, "FRAUD", "transactions_joined_prepared").outcome == "OK"
    prepared_table = "transactions_joined_prepared"
    assert metric(plane, "prepared_rows") == [(12_000, prepared_table, "bob")]
    assert metric(plane, "day_transactions") == [(35, prepared_table, "bob")]
    assert metric(plane, "prepared_day") == [("2018-06-14", prepared_table, "bob")]

    shown_only = run(SCORE, tmp_path / "score-shown.ipynb", day="2031-06-14")
    assert "The project has no dataset transactions_flagged" in str(shown_only.cells[-1].outputs)
    assert "matplotlib is not installed" in str(shown_only.cells) or "image/png" in str(shown_only.cells)
    assert metric(plane, "scored_transactions") == [(35, prepared_table, "bob")]

    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE transactions_flagged (transaction_id INTEGER)")
    plane.datasets.create_dataset(
        alice, "FRAUD", CreateDataset(name="transactions_flagged", connection="warehouse", table="transactions_flagged")
    )
    run(SCORE, tmp_path / "score.ipynb", day="2031-06-14", threshold=0.5)
    with sqlite3.connect(warehouse) as db:
        flagged = pd.read_sql("SELECT * FROM transactions_flagged", db)
    [(at_08, _, _), (count, _, actor)] = metric(plane, "flagged_count")
    assert actor == "bob" and count == len(flagged) > at_08
    assert (flagged["purchase_day"] == "2018-06-14").all() and (flagged["fraud_score"] > 0.5).all()
    assert (flagged["threshold"] == 0.5).all()
    assert metric(plane, "flagged_share")[-1] == (round(count / 35, 4), prepared_table, "bob")


def test_the_parameters_are_typed() -> None:
    prepare, score = pm.inspect_notebook(str(PREPARE)), pm.inspect_notebook(str(SCORE))
    assert {name: (p["inferred_type_name"], p["default"]) for name, p in prepare.items()} == {
        "day": ("str", '"2018-06-01"')
    }
    assert {name: (p["inferred_type_name"], p["default"]) for name, p in score.items()} == {
        "day": ("str", '"2018-06-01"'),
        "threshold": ("float", "0.8"),
    }


@pytest.mark.parametrize("notebook", [PREPARE, SCORE], ids=["prepare", "score"])
def test_the_notebooks_are_committed_clean(notebook: Path) -> None:
    read = nbformat.read(notebook, as_version=4)
    nbformat.validate(read)
    assert read.metadata.kernelspec.name == "python3"
    code = [cell for cell in read.cells if cell.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("notebook", [PREPARE, SCORE], ids=["prepare", "score"])
def test_the_day_is_mapped_onto_the_data(notebook: Path) -> None:
    [cell] = [cell for cell in nbformat.read(notebook, as_version=4).cells if cell.get("id") == "resolve-day"]
    namespace: dict[str, Any] = {"date": date, "pd": pd}
    exec(cell.source, namespace)
    resolve = namespace["resolve_day"]
    days = pd.Series(["2017-03-01", "2018-03-01", "2018-06-14", "2018-12-30"])
    assert resolve(date(2018, 6, 14), days) == "2018-06-14"  # present
    assert resolve(date(2025, 3, 1), days) == "2018-03-01"  # the latest with its month and day
    assert resolve(date(2024, 2, 29), days) == "2018-12-30"  # otherwise the latest day
    with pytest.raises(ValueError, match="no transactions"):
        resolve(date(2018, 6, 14), pd.Series([], dtype=str))


def send(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "himalia@example.org", "fraud-team@example.org", subject
    message.set_content("Two transactions flagged.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_the_mail_sink_keeps_each_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mail"
    controller = start_mailsink(folder, 0)
    try:
        send(controller.port, "Daily fraud scoring for 2018-06-14: ✅ success")
        send(controller.port, "second")
    finally:
        controller.stop()
    files = sorted(folder.glob("*.eml"), key=lambda p: p.name.rsplit("-", 1)[1])
    assert [p.name.rsplit("-", 1)[1] for p in files] == ["1.eml", "2.eml"]
    saved = BytesParser(policy=default).parsebytes(files[0].read_bytes())
    assert saved["Subject"] == "Daily fraud scoring for 2018-06-14: ✅ success"
    assert "Two transactions flagged." in saved.get_body().get_content()  # type: ignore[union-attr]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"mail to fraud-team@example.org: Daily fraud scoring for 2018-06-14: ✅ success -> {files[0]}"


def test_the_mail_sink_runs_as_a_module(tmp_path: Path) -> None:
    sink = subprocess.Popen(
        [sys.executable, "-m", "himalia.demo.mailsink", "--port", "0", "--folder", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        started = sink.stdout.readline()
        assert started.startswith("mail sink on 127.0.0.1:")
        send(int(started.split(":")[1].split(",")[0]), "from the module")
        assert sink.stdout.readline().startswith("mail to fraud-team@example.org: from the module -> ")
    finally:
        sink.terminate()
        assert sink.wait(10) == 0
    assert len(list(tmp_path.glob("*.eml"))) == 1
