"""Datasets, metrics and checks through the API and the CLI: the Dataiku fraud exercise, broken data,
schema drift, custom metrics, and who may compute what."""

import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.demo.seed import DEMO_DATASETS, build_warehouse
from himalia.wire.data import AccessSpec, CreateConnection
from himalia.wire.identity import SetGrant

from ..conftest import AUDIT_KEY, SECRET_KEY, LiveAPI
from ..postgres import TemporaryPostgres

ALPHA = "/projects/ALPHA"


@pytest.fixture
def fraud(api: LiveAPI, plane: ControlPlane, tmp_path: Path) -> Path:
    """A full-size fraud warehouse on its own connection, with the training's datasets and checks in ALPHA."""
    warehouse = tmp_path / "fraud.sqlite"
    build_warehouse(warehouse)
    created = api.request(
        "POST",
        "/connections",
        role="admin",
        json={
            "name": "fraud_wh",
            "type": "sql",
            "params": {"url": f"sqlite:///{warehouse}"},
            "usable_by": {"mode": "groups", "groups": ["readers", "contributors"]},
        },
    )
    assert created.status_code == 201, created.text
    for table, probes, checks in DEMO_DATASETS:
        body = {"name": table, "connection": "fraud_wh", "table": table, "probes": probes}
        assert api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body).status_code == 201
        for check in checks:
            response = api.request("POST", f"{ALPHA}/datasets/{table}/checks", role="contributor", json=check)
            assert response.status_code == 201, response.text
    return warehouse


def run_checks(api: LiveAPI, dataset: str, role: str = "contributor") -> dict[str, Any]:
    response = api.request("POST", f"{ALPHA}/datasets/{dataset}/checks/run", role=role)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_training_checks_pass_on_good_data(api: LiveAPI, fraud: Path) -> None:
    described = api.request("GET", f"{ALPHA}/datasets/transactions_2018", role="reader").json()
    assert len(described["columns"]) == 13 and described["can_write"] is False
    for table, _, checks in DEMO_DATASETS:
        outcome = run_checks(api, table)
        assert outcome["outcome"] == "OK", outcome
        assert [r["check"] for r in outcome["results"]] == sorted(c["name"] for c in checks)
    prepared = {r["check"]: r for r in run_checks(api, "transactions_joined_prepared")["results"]}
    assert 525 < prepared["Avg FICO Score Range"]["value"] < 650
    assert prepared["Positive purchases"]["value"] > 0


def test_broken_data_turns_a_check_red_and_history_shows_it(api: LiveAPI, fraud: Path) -> None:
    assert run_checks(api, "transactions_2018")["outcome"] == "OK"
    with sqlite3.connect(fraud) as warehouse:
        warehouse.execute("DELETE FROM transactions_2018 WHERE transaction_id >= 9812")
    broken = run_checks(api, "transactions_2018")
    assert broken["outcome"] == "ERROR"
    red = next(r for r in broken["results"] if r["check"] == "Over 10k records")
    assert red["message"] == "record count 9 812 is below the minimum 10 000"
    history = api.request(
        "GET", f"{ALPHA}/checks/history?dataset=transactions_2018&check=Over 10k records", role="reader"
    )
    assert [r["outcome"] for r in history.json()] == ["OK", "ERROR"]
    series = api.request("GET", f"{ALPHA}/datasets/transactions_2018/metrics?metric=record_count", role="reader")
    assert [point["value"] for point in series.json()] == [12_000, 9_812]
    listed = api.request("GET", f"{ALPHA}/datasets/transactions_2018/checks", role="reader").json()
    assert {c["name"]: c["last_result"]["outcome"] for c in listed} == {"Columns 13": "OK", "Over 10k records": "ERROR"}


def test_cli_checks_run_exits_1_on_error(api: LiveAPI, fraud: Path, plane: ControlPlane, tmp_path: Path) -> None:
    runner = CliRunner()
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}
    arguments = ["--home", plane.home, "--db-url", plane.db.url, "--as", "contributor", "checks", "run", "ALPHA"]
    assert runner.invoke(main, [*arguments, "transactions_2018"], env=environment).exit_code == 0
    with sqlite3.connect(fraud) as warehouse:
        warehouse.execute("UPDATE transactions_joined_prepared SET purchase_amount = -1 WHERE transaction_id = 7")
    failed = runner.invoke(main, [*arguments, "transactions_joined_prepared", "--json"], env=environment)
    assert failed.exit_code == 1
    messages = {r["message"] for r in json.loads(failed.output)["results"] if r["outcome"] == "ERROR"}
    assert messages == {"minimum of purchase_amount -1 is below the minimum 0.01"}
    usage = runner.invoke(main, [*arguments], env=environment)
    assert usage.exit_code == 2


def test_schema_drift_is_reported_and_checked(api: LiveAPI, fraud: Path) -> None:
    check = {"name": "Same columns", "type": "schema_unchanged"}
    assert api.request("POST", f"{ALPHA}/datasets/merchants/checks", role="contributor", json=check).status_code == 201
    with sqlite3.connect(fraud) as warehouse:
        warehouse.execute("ALTER TABLE merchants ADD COLUMN opened_on TEXT")
    refreshed = api.request("POST", f"{ALPHA}/datasets/merchants/schema", role="contributor").json()
    assert refreshed["changes"] == ["added opened_on (TEXT)"]
    results = {r["check"]: r for r in run_checks(api, "merchants")["results"]}
    assert results["Same columns"]["outcome"] == "ERROR"
    assert results["Same columns"]["message"] == "schema changed: added opened_on (TEXT)"
    assert results["Columns 7"]["outcome"] == "ERROR"


def test_custom_metrics_and_notebook_metrics(api: LiveAPI, fraud: Path) -> None:
    sql_metric = {"name": "declined", "sql": "SELECT COUNT(*) FROM transactions_2018 WHERE authorized_flag = 0"}
    python_metric = {
        "name": "p95_amount",
        "python": "def metric(df):\n    return float(df.purchase_amount.quantile(0.95))",
    }
    patch = {"custom_metrics": [sql_metric, python_metric]}
    refused = api.request("PATCH", f"{ALPHA}/datasets/transactions_2018", role="contributor", json=patch)
    assert refused.status_code == 403 and "write_unsafe_code" in refused.json()["message"]
    assert api.request("PATCH", f"{ALPHA}/datasets/transactions_2018", role="admin", json=patch).status_code == 200
    computed = api.request("POST", f"{ALPHA}/datasets/transactions_2018/metrics", role="contributor", json={}).json()
    with sqlite3.connect(fraud) as warehouse:
        declined = warehouse.execute("SELECT COUNT(*) FROM transactions_2018 WHERE authorized_flag = 0").fetchone()[0]
    assert computed["values"]["declined"] == declined
    assert 0 < computed["values"]["p95_amount"] < 1000
    assert computed["values"]["record_count"] == 12_000
    recorded = api.request(
        "POST",
        f"{ALPHA}/metrics",
        role="contributor",
        json={"name": "auc", "value": 0.91, "dataset": "transactions_2018"},
    )
    assert recorded.status_code == 201 and recorded.json()["origin"] == "notebook"
    assert api.request("POST", f"{ALPHA}/metrics", role="reader", json={"name": "auc", "value": 1}).status_code == 403
    series = api.request("GET", f"{ALPHA}/metrics?metric=auc", role="reader").json()
    assert [(p["value"], p["dataset"], p["actor"]) for p in series] == [(0.91, "transactions_2018", "contributor")]


def test_bad_probes_and_locations_name_the_field(api: LiveAPI, fraud: Path) -> None:
    cases = [
        ({"name": "x", "connection": "fraud_wh", "table": "nope"}, "table"),
        ({"name": "x", "connection": "fraud_wh", "query": "SELEC nonsense"}, "query"),
        ({"name": "x", "connection": "fraud_wh", "table": "merchants", "probes": ["avg:nope"]}, "probes"),
        ({"name": "x", "connection": "fraud_wh", "table": "merchants", "probes": ["median:state"]}, "probes"),
        ({"name": "x", "connection": "fraud_wh"}, "body"),
        ({"name": "x", "connection": "ghost", "table": "merchants"}, "connection"),
        ({"name": "x", "connection": "fraud_wh", "path": "a.csv"}, "path"),
    ]
    for body, field in cases:
        response = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())
    taken = api.request(
        "POST",
        f"{ALPHA}/datasets",
        role="contributor",
        json={"name": "merchants", "connection": "fraud_wh", "table": "merchants"},
    )
    assert taken.status_code == 409
    bad = api.request("POST", f"{ALPHA}/datasets/merchants/metrics", role="contributor", json={"probes": ["sum:state"]})
    assert bad.status_code == 400 and bad.json()["field"] == "probes"


def test_query_and_file_datasets(api: LiveAPI, plane: ControlPlane, fraud: Path, tmp_path: Path) -> None:
    query = "SELECT merchant_id, merchant_group_id FROM merchants WHERE state = 'CA'"
    probes = ["record_count", "sum:merchant_group_id"]
    body = {"name": "in_ca", "connection": "fraud_wh", "query": query, "probes": probes}
    created = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
    assert created.status_code == 201, created.text
    values = api.request("POST", f"{ALPHA}/datasets/in_ca/metrics", role="contributor", json={}).json()["values"]
    with sqlite3.connect(fraud) as warehouse:
        expected = warehouse.execute(f"SELECT COUNT(*), SUM(merchant_group_id) FROM ({query})").fetchone()
    assert (values["record_count"], values["sum:merchant_group_id"]) == expected
    lake = tmp_path / "lake"
    lake.mkdir()
    for part, select in enumerate(
        [
            "SELECT range AS id, range % 7 AS bucket FROM range(1000)",
            "SELECT range AS id, NULL::BIGINT AS bucket FROM range(1000, 1500)",
        ]
    ):
        duckdb.sql(f"COPY ({select}) TO '{lake / f'part-{part}.parquet'}' (FORMAT parquet)")
    connection = {
        "name": "lake",
        "type": "files",
        "params": {"url": str(lake)},
        "usable_by": {"mode": "groups", "groups": ["contributors"]},
    }
    assert api.request("POST", "/connections", role="admin", json=connection).status_code == 201
    files = {
        "name": "events",
        "connection": "lake",
        "path": "part-*.parquet",
        "probes": ["record_count", "null_count:bucket", "max:id", "size_bytes"],
    }
    assert api.request("POST", f"{ALPHA}/datasets", role="contributor", json=files).status_code == 201
    values = api.request("POST", f"{ALPHA}/datasets/events/metrics", role="contributor", json={}).json()["values"]
    assert values["record_count"] == 1500 and values["null_count:bucket"] == 500 and values["max:id"] == 1499
    assert values["size_bytes"] == sum(p.stat().st_size for p in lake.iterdir())


def test_who_may_compute(api: LiveAPI, plane: ControlPlane, fraud: Path) -> None:
    """Computing reads the data and writes history: read_content, and run_scenarios or write_content,
    and a connection one may use. Readers never compute."""
    admin = plane.users.caller_for("admin")
    plane.projects.set_grant(admin, "ALPHA", SetGrant(user="nogrant", permissions=["read_content", "run_scenarios"]))
    refused = api.request("POST", f"{ALPHA}/datasets/merchants/metrics", role="nogrant", json={})
    assert refused.status_code == 403 and "may not use the connection" in refused.json()["message"]
    assert api.request("POST", f"{ALPHA}/datasets/merchants/metrics", role="reader", json={}).status_code == 403
    # A launcher reads results (read_dashboards) but not the data definitions (read_content).
    plane.projects.set_grant(admin, "ALPHA", SetGrant(user="nogrant", preset="launcher"))
    assert api.request("GET", f"{ALPHA}/datasets/merchants/checks", role="nogrant").status_code == 200
    assert api.request("GET", f"{ALPHA}/datasets/merchants", role="nogrant").status_code == 403


def test_per_user_credentials_compute_with_the_callers_own_secret(
    plane: ControlPlane, postgres: TemporaryPostgres
) -> None:
    from sqlalchemy import create_engine, text

    admin_engine = create_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as sql:
        sql.execute(text("DROP DATABASE IF EXISTS per_user_wh"))
        sql.execute(text("CREATE DATABASE per_user_wh"))
        sql.execute(text("DROP ROLE IF EXISTS alice_db"))
        sql.execute(text("CREATE ROLE alice_db LOGIN PASSWORD 'alice-Pw1'"))
    admin_engine.dispose()
    warehouse = create_engine(postgres.url("per_user_wh"), isolation_level="AUTOCOMMIT")
    with warehouse.connect() as sql:
        sql.execute(text("CREATE TABLE scores AS SELECT g AS id, g * 1.5 AS score FROM generate_series(1, 250) g"))
        sql.execute(text("GRANT SELECT ON scores TO alice_db"))
    warehouse.dispose()
    admin = plane.users.caller_for("admin")
    plane.connections.create_connection(
        admin,
        CreateConnection(
            name="pg_per_user",
            type="sql",
            params={"url": postgres.url("per_user_wh", user="alice_db")},
            credentials_mode="per_user",
            usable_by=AccessSpec(mode="groups", groups=["contributors"]),
        ),
    )
    contributor = plane.users.caller_for("contributor")
    from himalia.core.errors import InvalidInput
    from himalia.wire.data import CreateDataset, SetCredentials

    with pytest.raises(InvalidInput, match="needs your own credentials"):
        plane.datasets.create_dataset(
            contributor, "ALPHA", CreateDataset(name="scores", connection="pg_per_user", table="scores")
        )
    plane.connections.set_my_credentials(contributor, "pg_per_user", SetCredentials(secrets={"password": "alice-Pw1"}))
    plane.datasets.create_dataset(
        contributor,
        "ALPHA",
        CreateDataset(name="scores", connection="pg_per_user", table="scores", probes=["record_count", "avg:score"]),
    )
    assert plane.metrics.compute(contributor, "ALPHA", "scores").values == {"record_count": 250, "avg:score": 188.25}
    plane.connections.set_my_credentials(contributor, "pg_per_user", SetCredentials(secrets={"password": "wrong"}))
    with pytest.raises(InvalidInput, match="password authentication failed"):
        plane.metrics.compute(contributor, "ALPHA", "scores")


def test_history_exported_into_a_dataset(api: LiveAPI, fraud: Path, tmp_path: Path) -> None:
    run_checks(api, "transactions_2018")
    run_checks(api, "merchants")
    scratch = {
        "name": "scratch",
        "type": "sql",
        "params": {"url": f"sqlite:///{tmp_path / 'scratch.sqlite'}"},
        "allow_write": True,
        "usable_by": {"mode": "groups", "groups": ["contributors", "readers"]},
    }
    assert api.request("POST", "/connections", role="admin", json=scratch).status_code == 201
    body = {"history": "checks", "connection": "scratch", "table": "check_history", "dataset": "check_history"}
    assert api.request("POST", f"{ALPHA}/history/export", role="reader", json=body).status_code == 403
    read_only = {**body, "connection": "fraud_wh"}
    refused = api.request("POST", f"{ALPHA}/history/export", role="contributor", json=read_only)
    assert refused.status_code == 403 and "does not allow writes" in refused.json()["message"]
    exported = api.request("POST", f"{ALPHA}/history/export", role="contributor", json=body)
    assert exported.status_code == 200, exported.text
    assert {c["name"] for c in exported.json()["columns"]} >= {"check", "dataset", "outcome", "message", "evaluated_at"}
    with sqlite3.connect(tmp_path / "scratch.sqlite") as copy:
        assert copy.execute("SELECT COUNT(*), COUNT(DISTINCT dataset) FROM check_history").fetchone() == (4, 2)
    metrics = {
        **body,
        "history": "metrics",
        "table": "metric_history",
        "dataset": "metric_history",
        "source": "merchants",
    }
    assert api.request("POST", f"{ALPHA}/history/export", role="contributor", json=metrics).status_code == 200
    counted = api.request("POST", f"{ALPHA}/datasets/metric_history/metrics", role="contributor", json={}).json()
    assert counted["values"]["record_count"] == 2  # merchants: record_count and column_count, computed once


def test_a_duckdb_database_connection(api: LiveAPI, tmp_path: Path) -> None:
    database = tmp_path / "lake.duckdb"
    with duckdb.connect(str(database)) as lake:
        lake.execute("CREATE TABLE readings AS SELECT range AS id, range * 0.5 AS value FROM range(2000)")
    connection = {
        "name": "duck",
        "type": "sql",
        "params": {"url": f"duckdb:///{database}"},
        "usable_by": {"mode": "groups", "groups": ["contributors"]},
    }
    assert api.request("POST", "/connections", role="admin", json=connection).status_code == 201
    assert api.request("POST", "/connections/duck/test", role="contributor").json()["ok"] is True
    dataset = {
        "name": "readings",
        "connection": "duck",
        "table": "readings",
        "probes": ["record_count", "avg:value", "stddev:id"],
    }
    created = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=dataset)
    assert created.status_code == 201, created.text
    values = api.request("POST", f"{ALPHA}/datasets/readings/metrics", role="contributor", json={}).json()["values"]
    assert values["record_count"] == 2000 and values["avg:value"] == 499.75
    assert values["stddev:id"] == pytest.approx(577.4945887192364)


def test_no_way_out_of_a_connection(api: LiveAPI, tmp_path: Path) -> None:
    """Paths cannot climb out of a files connection; a DuckDB connection reads only its own database."""
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("top-secret-value\n")
    (root / "ok.csv").write_text("a\n1\n")
    files = {"name": "files", "type": "files", "params": {"url": str(root)}, "usable_by": {"mode": "everyone"}}
    assert api.request("POST", "/connections", role="admin", json=files).status_code == 201
    for path in ("../secret.txt", "sub/../../secret.txt", "..\\secret.txt"):
        body = {"name": "leak", "connection": "files", "path": path, "format": "csv"}
        refused = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
        assert refused.status_code == 400 and refused.json()["field"] == "path", refused.text
        assert "top-secret-value" not in refused.text
    database = tmp_path / "own.duckdb"
    duckdb.connect(str(database)).close()
    duck = {
        "name": "duck2",
        "type": "sql",
        "params": {"url": f"duckdb:///{database}"},
        "usable_by": {"mode": "everyone"},
    }
    assert api.request("POST", "/connections", role="admin", json=duck).status_code == 201
    query = f"SELECT content FROM read_text('{tmp_path / 'secret.txt'}')"
    body = {"name": "leak", "connection": "duck2", "query": query}
    refused = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
    assert refused.status_code == 400 and "Permission Error" in refused.json()["message"]
    assert "top-secret-value" not in refused.text


def test_custom_sql_metrics_cannot_change_data(api: LiveAPI, plane: ControlPlane, fraud: Path) -> None:
    for statement in ("DROP TABLE merchants", "DELETE FROM merchants", "SELECT 1; DROP TABLE merchants"):
        patch = {"custom_metrics": [{"name": "boom", "sql": statement}]}
        assert api.request("PATCH", f"{ALPHA}/datasets/merchants", role="contributor", json=patch).status_code == 200
        failed = api.request(
            "POST", f"{ALPHA}/datasets/merchants/metrics", role="contributor", json={"probes": ["boom"]}
        )
        assert failed.status_code == 400 and failed.json()["field"] == "custom_metrics"
    with sqlite3.connect(fraud) as warehouse:
        assert warehouse.execute("SELECT COUNT(*) FROM merchants").fetchone() == (10_500,)


def test_bad_values_and_bad_code_are_answered_not_crashed(api: LiveAPI, fraud: Path) -> None:
    nan = api.request(
        "POST",
        f"{ALPHA}/metrics",
        role="contributor",
        data='{"name": "x", "value": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 400
    forever = {"name": "Fresh", "type": "freshness", "metric": "record_count", "max_age": "9999999999d"}
    refused = api.request("POST", f"{ALPHA}/datasets/merchants/checks", role="admin", json=forever)
    assert refused.status_code == 400 and "ten years" in refused.json()["message"]
    odd = {"name": "Odd", "type": "custom_python", "code": "def check(value, history):\n    return [['OK'], 'x']"}
    assert api.request("POST", f"{ALPHA}/datasets/merchants/checks", role="admin", json=odd).status_code == 201
    results = {r["check"]: r for r in run_checks(api, "merchants")["results"]}
    assert results["Odd"]["outcome"] == "ERROR" and "not one of OK" in results["Odd"]["message"]
    mysql = {"name": "my", "type": "sql", "params": {"url": "mysql://h/db"}, "usable_by": {"mode": "everyone"}}
    assert api.request("POST", "/connections", role="admin", json=mysql).status_code == 201
    missing_driver = api.request(
        "POST", f"{ALPHA}/datasets", role="contributor", json={"name": "m", "connection": "my", "table": "t"}
    )
    assert missing_driver.status_code == 400 and missing_driver.json()["field"] == "table"


def test_export_refuses_to_repoint_a_dataset(api: LiveAPI, fraud: Path, tmp_path: Path) -> None:
    scratch = {
        "name": "scratch2",
        "type": "sql",
        "params": {"url": f"sqlite:///{tmp_path / 's.sqlite'}"},
        "allow_write": True,
        "usable_by": {"mode": "everyone"},
    }
    assert api.request("POST", "/connections", role="admin", json=scratch).status_code == 201
    body = {"history": "checks", "connection": "scratch2", "table": "h", "dataset": "merchants"}
    empty = api.request("POST", f"{ALPHA}/history/export", role="contributor", json=body)
    assert empty.status_code == 400 and "no checks history" in empty.json()["message"]
    run_checks(api, "merchants")
    clash = api.request("POST", f"{ALPHA}/history/export", role="contributor", json=body)
    assert clash.status_code == 409 and clash.json()["field"] == "dataset"
