"""Row conditions: the rows that break a rule, counted where the data lives in the dataset's one
aggregate statement, judged by checks, and sampled (one bounded statement) when a check fails;
end to end on SQLite, DuckDB, PostgreSQL and Parquet, and the samples shown only to readers of
the content."""

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from himalia.data.probes import compute_sql, failing_rows_of_sql
from himalia.wire.data import RowCondition

from ..conftest import LiveAPI
from .test_freshness import ALPHA, EACH_SOURCE

Row = tuple[int, float | None, str | None, str]
Writer = Callable[[list[Row]], None]

#: 40 good orders, then what breaks each condition.
GOOD: list[Row] = [(i, 10.0 + i, f"AB-{1000 + i}", "paid") for i in range(40)]
NEGATIVE: list[Row] = [(100 + i, -1.0 - i, f"CD-{2000 + i}", "paid") for i in range(12)]
BAD_CODES: list[Row] = [(200, 5.0, "ab-1234", "paid"), (201, 5.0, "AB-12345", "paid"), (202, 5.0, None, "paid")]
UNKNOWN_STATUS: list[Row] = [(300, 5.0, "EF-3000", "lost")]
NO_AMOUNT: list[Row] = [(400, None, "EF-4000", "refunded")]
REPEATED: list[Row] = [(0, 7.0, "GH-5000", "paid"), (0, 8.0, "GH-5001", "paid"), (1, 9.0, "GH-5002", "paid")]
ALL = GOOD + NEGATIVE + BAD_CODES + UNKNOWN_STATUS + NO_AMOUNT + REPEATED

CONDITIONS = [
    {"name": "positive_amount", "column": "amount", "min": 0},
    {"name": "order_code", "column": "code", "pattern": r"^[A-Z]{2}-\d{4}$"},
    {"name": "known_status", "column": "status", "values": ["paid", "refunded"]},
    {"name": "has_amount", "column": "amount", "not_null": True},
    {"name": "one_order", "column": "id", "unique": True},
]


@pytest.fixture
def backend() -> str:
    """The store's backend is not what these tests are about: the sources are."""
    return "sqlite"


def _sqlite(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    path = tmp_path / "orders.sqlite"

    def write(rows: list[Row]) -> None:
        with sqlite3.connect(path) as database:
            database.execute("DROP TABLE IF EXISTS orders")
            database.execute("CREATE TABLE orders (id INTEGER, amount REAL, code TEXT, status TEXT)")
            database.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)

    return {"url": f"sqlite:///{path}"}, write


def _duckdb(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    path = tmp_path / "orders.duckdb"

    def write(rows: list[Row]) -> None:
        with duckdb.connect(str(path)) as database:
            database.execute("CREATE OR REPLACE TABLE orders (id INTEGER, amount DOUBLE, code VARCHAR, status VARCHAR)")
            database.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)

    return {"url": f"duckdb:///{path}"}, write


def _postgres(_tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    postgres = request.getfixturevalue("postgres")
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    name = f"orders_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(postgres.url(name))
    request.addfinalizer(engine.dispose)

    def write(rows: list[Row]) -> None:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS orders"))
            connection.execute(sa.text("CREATE TABLE orders (id integer, amount float8, code text, status text)"))
            connection.execute(
                sa.text("INSERT INTO orders VALUES (:i, :a, :c, :s)"),
                [{"i": i, "a": a, "c": c, "s": s} for i, a, c, s in rows],
            )

    return {"url": postgres.url(name)}, write


def _parquet(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    folder = tmp_path / "lake"
    folder.mkdir()

    def write(rows: list[Row]) -> None:
        ids, amounts, codes, statuses = zip(*rows, strict=True)
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "amount": pa.array(amounts, pa.float64()),
                "code": pa.array(codes, pa.string()),
                "status": pa.array(statuses, pa.string()),
            }
        )
        pq.write_table(table, folder / "orders.parquet")

    return {"url": str(folder)}, write


SOURCES = {"sqlite": _sqlite, "duckdb": _duckdb, "postgresql": _postgres, "parquet": _parquet}


def orders_dataset(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, source: str, rows: list[Row], **declared: Any
) -> Writer:
    params, write = SOURCES[source](tmp_path, request)
    write(rows)
    kind = "files" if source == "parquet" else "sql"
    connection = {"name": "orders_src", "type": kind, "params": params, "usable_by": {"mode": "everyone"}}
    assert api.request("POST", "/connections", role="admin", json=connection).status_code == 201
    location = {"path": "orders.parquet"} if kind == "files" else {"table": "orders"}
    body = {"name": "orders", "connection": "orders_src", **location, **declared}
    created = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
    assert created.status_code == 201, created.text
    return write


def save_check(api: LiveAPI, check: dict[str, Any]) -> None:
    saved = api.request("POST", f"{ALPHA}/datasets/orders/checks", role="contributor", json=check)
    assert saved.status_code == 201, saved.text


def run(api: LiveAPI) -> dict[str, Any]:
    response = api.request("POST", f"{ALPHA}/datasets/orders/checks/run", role="contributor")
    assert response.status_code == 200, response.text
    return {r["check"]: r for r in response.json()["results"]}


@EACH_SOURCE
def test_conditions_count_the_rows_that_break_them_and_a_failed_check_samples_them(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, source: str
) -> None:
    write = orders_dataset(api, tmp_path, request, source, ALL, conditions=CONDITIONS)
    for condition in CONDITIONS:
        save_check(
            api,
            {"name": condition["name"], "type": "range", "metric": f"invalid_count:{condition['name']}", "max": 0},
        )
    save_check(
        api, {"name": "Mostly positive", "type": "range", "metric": "invalid_percent:positive_amount", "soft_max": 5}
    )

    results = run(api)
    counts = {name: results[name]["value"] for name in (c["name"] for c in CONDITIONS)}
    # A null breaks only not_null; every repetition of an id breaks unique once.
    assert counts == {"positive_amount": 12, "order_code": 2, "known_status": 1, "has_amount": 1, "one_order": 3}
    assert all(results[name]["outcome"] == "ERROR" for name in counts)
    assert results["Mostly positive"]["outcome"] == "WARNING"
    assert results["Mostly positive"]["value"] == pytest.approx(100 * 12 / len(ALL))
    assert results["positive_amount"]["message"] == "rows breaking positive_amount 12 is above the maximum 0"

    samples = {name: results[name]["failing_rows"] for name in counts}
    assert all(s["columns"] == ["id", "amount", "code", "status"] for s in samples.values())
    assert samples["positive_amount"]["condition"] == "positive_amount"
    negative = samples["positive_amount"]["rows"]
    assert len(negative) == 10 and all(row[1] < 0 for row in negative)  # bounded: 10 of the 12
    assert {tuple(row) for row in negative} <= set(NEGATIVE)
    assert sorted(map(tuple, samples["order_code"]["rows"])) == sorted(BAD_CODES[:2])  # a null is no bad code
    assert [tuple(row) for row in samples["known_status"]["rows"]] == UNKNOWN_STATUS
    assert [tuple(row) for row in samples["has_amount"]["rows"]] == NO_AMOUNT
    repeated = samples["one_order"]["rows"]  # every row of each repeated id, each id's rows together
    assert sorted(map(tuple, repeated)) == sorted([GOOD[0], GOOD[1], *REPEATED])
    assert [row[0] for row in repeated] == [0, 0, 0, 1, 1]
    assert results["Mostly positive"]["failing_rows"]["condition"] == "positive_amount"

    computed = api.request("POST", f"{ALPHA}/datasets/orders/metrics", role="contributor", json={}).json()["values"]
    assert computed["invalid_percent:order_code"] == pytest.approx(100 * 2 / len(ALL))  # implied by the condition
    assert computed["invalid_count:has_amount"] == 1

    write(GOOD)
    clean = run(api)
    assert {r["outcome"] for r in clean.values()} == {"OK"}
    assert all(r["failing_rows"] is None for r in clean.values())  # nothing failed, nothing sampled


def test_samples_are_shown_only_to_readers_of_the_content(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    orders_dataset(api, tmp_path, request, "sqlite", ALL, conditions=CONDITIONS[:1])
    save_check(api, {"name": "Positive", "type": "range", "metric": "invalid_count:positive_amount", "max": 0})
    assert run(api)["Positive"]["failing_rows"]["rows"]
    grant = {"user": "nogrant", "preset": "launcher"}  # dashboards and runs, not the content
    granted = api.request("POST", f"{ALPHA}/grants", role="projadmin", json=grant)
    assert granted.status_code in (200, 201), granted.text

    for role, shown in [("reader", True), ("contributor", True), ("nogrant", False)]:
        listed = api.request("GET", f"{ALPHA}/datasets/orders/checks", role=role)
        assert listed.status_code == 200, listed.text
        one = api.request("GET", f"{ALPHA}/datasets/orders/checks/Positive", role=role).json()
        history = api.request("GET", f"{ALPHA}/checks/history?dataset=orders", role=role)
        assert history.status_code == 200, history.text
        for result in (listed.json()[0]["last_result"], one["last_result"], history.json()[-1]):
            assert (result["failing_rows"] is not None) is shown, (role, result)
            assert result["outcome"] == "ERROR" and result["value"] == 12  # the count is a dashboard's
    entries = api.request("GET", "/audit?limit=20", role="admin").json()["items"]
    assert not any("CD-20" in str(entry) for entry in entries)  # no row of the data in the audit trail


def test_an_operator_may_keep_no_failing_rows(api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    orders_dataset(api, tmp_path, request, "sqlite", ALL, conditions=CONDITIONS[:1])
    save_check(api, {"name": "Positive", "type": "range", "metric": "invalid_count:positive_amount", "max": 0})
    api.plane.checks.failing_rows_sample = 0  # an operator who keeps no rows at all
    result = run(api)["Positive"]
    assert (result["outcome"], result["value"], result["failing_rows"]) == ("ERROR", 12, None)


def test_conditions_fold_into_the_one_aggregate_and_a_sample_is_one_bounded_statement(tmp_path: Path) -> None:
    params, write = _sqlite(tmp_path, None)  # type: ignore[arg-type]
    write(ALL)
    engine = sa.create_engine(params["url"])
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    conditions = [RowCondition.model_validate(c) for c in CONDITIONS]
    probes = [
        "record_count",
        "min:amount",
        *(f"{s}:{c.name}" for c in conditions for s in ("invalid_count", "invalid_percent")),
    ]
    source = sa.table(
        "orders",
        sa.column("id", sa.Integer()),
        sa.column("amount", sa.Float()),
        sa.column("code", sa.String()),
        sa.column("status", sa.String()),
    )
    values = compute_sql(engine, source, probes, conditions)
    assert len(statements) == 1 and values["invalid_count:one_order"] == 3 and values["record_count"] == len(ALL)
    for condition in conditions:
        statements.clear()
        sample = failing_rows_of_sql(engine, source, condition, 3)
        assert len(statements) == 1 and " LIMIT " in statements[0] and len(sample["rows"]) <= 3


def _refusal(response: Any, field: str | None = None) -> str:
    """The message of a 400 that names ``field`` (in its message or as its field)."""
    assert response.status_code == 400, response.text
    body = response.json()
    if field is not None:
        assert field in body["message"] or (body.get("field") or "").startswith(field), body
    return body["message"]


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ({"name": "c", "column": "amount"}, "exactly one rule"),
        ({"name": "c", "column": "amount", "min": 0, "not_null": True}, "exactly one rule"),
        ({"name": "c", "column": "amount", "min": 5, "max": 1}, "'min' is above 'max'"),
        ({"name": "c", "column": "code", "pattern": "(a)\\1"}, "RE2"),
        ({"name": "c", "column": "code", "pattern": "(?P<x"}, "RE2"),
        ({"name": "c", "column": "code", "pattern": "x" * 1001}, "1000"),
        ({"name": "no such", "column": "code", "not_null": True}, "name"),
        ({"name": "c", "column": "code", "values": []}, "values"),
        ({"name": "c", "column": "missing", "not_null": True}, "no column 'missing'"),
        ({"name": "c", "column": "code", "not_null": False}, "not_null"),
        ({"name": "c", "column": "code", "sql": "code IS NULL"}, "sql"),
    ],
)
def test_a_bad_condition_is_refused_naming_its_field(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, condition: dict[str, Any], says: str
) -> None:
    orders_dataset(api, tmp_path, request, "sqlite", ALL)
    body = {"conditions": [condition]}
    message = _refusal(api.request("PATCH", f"{ALPHA}/datasets/orders", role="contributor", json=body), "conditions")
    assert says in message, message


def test_conditions_are_judged_against_their_columns_and_checks_against_the_conditions(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    orders_dataset(api, tmp_path, request, "sqlite", ALL, conditions=CONDITIONS[:1])
    compute = f"{ALPHA}/datasets/orders/metrics"
    for condition, says in [
        ({"name": "c", "column": "code", "min": 0}, "column 'code' is text; a range condition needs"),
        ({"name": "c", "column": "amount", "pattern": "^1"}, "column 'amount' is float; a pattern condition needs"),
        ({"name": "c", "column": "status", "values": ["paid", 1]}, "column 'status' is text, and 1 is not"),
        ({"name": "c", "column": "amount", "values": [True]}, "column 'amount' is float, and True is not"),
    ]:
        patched = api.request("PATCH", f"{ALPHA}/datasets/orders", role="contributor", json={"conditions": [condition]})
        assert patched.status_code == 200, patched.text
        message = _refusal(api.request("POST", compute, role="contributor", json={"probes": ["invalid_count:c"]}))
        assert says in message and "condition 'c'" in message, message
    refused = _refusal(api.request("POST", compute, role="contributor", json={"probes": ["invalid_count:nothing"]}))
    assert "no row condition 'nothing'" in refused

    api.request("PATCH", f"{ALPHA}/datasets/orders", role="contributor", json={"conditions": CONDITIONS[:1]})
    check = {"name": "X", "type": "range", "metric": "invalid_count:absent", "max": 0}
    refused = api.request("POST", f"{ALPHA}/datasets/orders/checks", role="contributor", json=check)
    assert refused.status_code == 400 and "no row condition 'absent'" in refused.json()["message"], refused.text
    save_check(api, {"name": "Positive", "type": "range", "metric": "invalid_count:positive_amount", "max": 0})
    dropped = api.request("PATCH", f"{ALPHA}/datasets/orders", role="contributor", json={"conditions": []})
    assert dropped.status_code == 409 and "'Positive' counts the rows breaking 'positive_amount'" in dropped.text
    probed = {"probes": ["record_count", "invalid_count:gone"]}
    refused = api.request("PATCH", f"{ALPHA}/datasets/orders", role="contributor", json=probed)
    assert refused.status_code == 400 and "no row condition 'gone'" in refused.text
    described = api.request("GET", f"{ALPHA}/datasets/orders", role="reader").json()["conditions"]
    assert [{k: v for k, v in c.items() if v is not None} for c in described] == CONDITIONS[:1]
