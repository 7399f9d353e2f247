"""Freshness of the data itself: the newest value of a timestamp column (or the files' newest
modification time), computed in the source, kept as metrics and judged by the ``freshness`` check.

Probes on SQLite, DuckDB, PostgreSQL, Parquet and CSV with zone-aware, naive and date columns, in
one aggregate statement; then end to end through the API: stale is ERROR naming the age and the
limit, ``warn_after`` is WARNING, an empty table is EMPTY; bad declarations are 400s naming the
field, readers cannot change a declaration, bundles carry it, the CLI shows it.
"""

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from himalia.cli import main
from himalia.cli.datasets import freshness_text
from himalia.controlplane import ControlPlane
from himalia.core.errors import InvalidInput
from himalia.data.drivers import sql_source
from himalia.data.probes import compute_files, compute_sql

from ..conftest import AUDIT_KEY, SECRET_KEY, LiveAPI
from ..postgres import TemporaryPostgres

ALPHA = "/projects/ALPHA"

# -- the probes, engine by engine ---------------------------------------------------------------

#: Two offsets and a NULL: the newest instant is 2026-12-01 04:30 UTC, though 09:30 is written.
AWARE = [datetime(2026, 11, 30, 10, 0, tzinfo=UTC), datetime.fromisoformat("2026-12-01T09:30:00+05:00"), None]
NAIVE = [datetime(2026, 11, 30, 23, 59, 59), datetime(2026, 12, 1, 8, 15), None]
DAYS = [date(2026, 11, 29), date(2026, 12, 1), None]
EXPECTED = {
    "newest:aware": "2026-12-01T04:30:00+00:00",
    "newest:naive": "2026-12-01T08:15:00+00:00",
    "newest:day": "2026-12-01T00:00:00+00:00",
}


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'fresh.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def duckdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"duckdb:///{tmp_path_factory.mktemp('duckdb') / 'fresh.duckdb'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(postgres: TemporaryPostgres, postgres_admin: sa.Engine) -> Iterator[sa.Engine]:
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    # A session zone far from UTC: timestamptz values come back in it, and the answers must not depend on it.
    engine = sa.create_engine(postgres.url(name), connect_args={"options": "-c timezone=Asia/Kolkata"})
    with engine.connect() as connection:
        assert connection.execute(sa.text("SHOW timezone")).scalar() == "Asia/Kolkata"
    yield engine
    engine.dispose()
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))


ENGINES = ["sqlite_engine", "duckdb_engine", pytest.param("postgres_engine", marks=pytest.mark.postgres)]


def load_times(engine: sa.Engine, rows: int = 3) -> sa.Table:
    """A table with a zone-aware, a naive and a date column (SQLite, which has no zones, stores ISO text)."""
    aware_type: sa.types.TypeEngine[Any] = sa.Text() if engine.dialect.name == "sqlite" else sa.DateTime(timezone=True)
    metadata = sa.MetaData()
    table = sa.Table(
        f"t_{uuid.uuid4().hex[:8]}",
        metadata,
        sa.Column("id", sa.Integer),
        sa.Column("aware", aware_type),
        sa.Column("naive", sa.DateTime()),
        sa.Column("day", sa.Date()),
        sa.Column("label", sa.Text()),
    )
    metadata.create_all(engine)

    def aware(moment: datetime | None) -> datetime | str | None:
        return moment.isoformat() if engine.dialect.name == "sqlite" and moment is not None else moment

    values = [
        {
            "id": index,
            "aware": aware(AWARE[index]),
            "naive": NAIVE[index],
            "day": DAYS[index],
            "label": "not a time",
        }
        for index in range(rows)
    ]
    if values:
        with engine.begin() as connection:
            connection.execute(table.insert(), values)
    return table


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_newest_values_in_one_aggregate_statement(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    table = load_times(engine)
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        source = sql_source(engine, table=table.name)  # reflection happens here, before counting
        probes = ["record_count", "max:id", *EXPECTED]
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            results = compute_sql(engine, source, probes)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        assert len(statements) == 1, statements
        assert statements[0].lstrip().upper().startswith("SELECT")
        assert results == {"record_count": 3, "max:id": 2, **EXPECTED}
    finally:
        table.drop(engine)


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_an_empty_table_has_no_newest_value_and_non_times_are_refused(
    engine_fixture: str, request: pytest.FixtureRequest
) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    empty, full = load_times(engine, rows=0), load_times(engine)
    try:
        assert compute_sql(engine, sql_source(engine, table=empty.name), list(EXPECTED)) == dict.fromkeys(EXPECTED)
        source = sql_source(engine, table=full.name)
        for probe, named in (
            ("newest:id", "not a timestamp"),
            ("newest:label", "not an ISO 8601"),
            ("last_modified", "only file"),
        ):
            with pytest.raises(InvalidInput) as caught:
                compute_sql(engine, source, [probe])
            assert caught.value.field == "probes" and named in caught.value.message, caught.value.message
    finally:
        empty.drop(engine)
        full.drop(engine)


def test_parquet_and_csv_columns_and_modification_times(tmp_path: Path) -> None:
    parquet = tmp_path / "times.parquet"
    pq.write_table(
        pa.table(
            {
                "aware": pa.array(AWARE, pa.timestamp("us", tz="UTC")),
                "naive": pa.array(NAIVE, pa.timestamp("us")),
                "day": pa.array(DAYS, pa.date32()),
            }
        ),
        parquet,
    )
    csv = tmp_path / "times.csv"
    csv.write_text(
        "aware,naive,day\n"
        "2026-11-30T10:00:00+00:00,2026-11-30 23:59:59,2026-11-29\n"
        "2026-12-01T09:30:00+05:00,2026-12-01 08:15:00,2026-12-01\n"
        ",,\n"
    )
    stamp = datetime(2026, 12, 2, 6, 0, tzinfo=UTC).timestamp()
    os.utime(parquet, (stamp, stamp))
    os.utime(csv, (stamp - 3600, stamp - 3600))
    for path, fmt in ((parquet, "parquet"), (csv, "csv")):
        results = compute_files(str(path), fmt, [*EXPECTED, "last_modified"])  # type: ignore[arg-type]
        assert results == {**EXPECTED, "last_modified": datetime.fromtimestamp(os.path.getmtime(path), UTC).isoformat()}
    older = tmp_path / "older.csv"
    older.write_text(csv.read_text())
    os.utime(older, (stamp - 7200, stamp - 7200))
    both = compute_files(str(tmp_path / "*.csv"), "csv", ["last_modified"])  # the newest of the two
    assert both == {"last_modified": "2026-12-02T05:00:00+00:00"}


# -- end to end: sources, checks, outcomes -------------------------------------------------------

Writer = Callable[[list[timedelta]], None]


def _rows(ages: list[timedelta]) -> list[datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [now - age for age in ages]


def sqlite_source(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    path = tmp_path / "events.sqlite"

    def write(ages: list[timedelta]) -> None:
        with sqlite3.connect(path) as database:  # naive text, read as UTC
            database.execute("DROP TABLE IF EXISTS events")
            database.execute("CREATE TABLE events (id INTEGER, event_time TIMESTAMP)")
            database.executemany(
                "INSERT INTO events VALUES (?, ?)",
                [(i, moment.replace(tzinfo=None).isoformat(sep=" ")) for i, moment in enumerate(_rows(ages))],
            )

    write([timedelta(days=3)])
    return {"url": f"sqlite:///{path}"}, write


def duckdb_source(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    path = tmp_path / "events.duckdb"

    def write(ages: list[timedelta]) -> None:
        with duckdb.connect(str(path)) as database:  # zone-aware
            database.execute("CREATE OR REPLACE TABLE events (id INTEGER, event_time TIMESTAMPTZ)")
            for index, moment in enumerate(_rows(ages)):
                database.execute("INSERT INTO events VALUES (?, ?)", [index, moment])

    write([timedelta(days=3)])
    return {"url": f"duckdb:///{path}"}, write


def postgres_source(_tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    postgres: TemporaryPostgres = request.getfixturevalue("postgres")
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    name = f"events_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(postgres.url(name))
    request.addfinalizer(engine.dispose)

    def write(ages: list[timedelta]) -> None:
        with engine.begin() as connection:  # zone-aware
            connection.execute(sa.text("DROP TABLE IF EXISTS events"))
            connection.execute(sa.text("CREATE TABLE events (id integer, event_time timestamptz)"))
            for index, moment in enumerate(_rows(ages)):
                connection.execute(sa.text("INSERT INTO events VALUES (:i, :t)"), {"i": index, "t": moment})

    write([timedelta(days=3)])
    return {"url": postgres.url(name)}, write


def parquet_source(tmp_path: Path, _request: pytest.FixtureRequest) -> tuple[dict[str, Any], Writer]:
    folder = tmp_path / "lake"
    folder.mkdir()

    def write(ages: list[timedelta]) -> None:
        moments = [moment.replace(tzinfo=None) for moment in _rows(ages)]  # naive, read as UTC
        table = pa.table(
            {"id": pa.array(range(len(moments)), pa.int64()), "event_time": pa.array(moments, pa.timestamp("us"))}
        )
        pq.write_table(table, folder / "events.parquet")

    write([timedelta(days=3)])
    return {"url": str(folder)}, write


SOURCES = {
    "sqlite": sqlite_source,
    "duckdb": duckdb_source,
    "postgresql": postgres_source,
    "parquet": parquet_source,
}


def run_checks(api: LiveAPI, dataset: str) -> dict[str, Any]:
    response = api.request("POST", f"{ALPHA}/datasets/{dataset}/checks/run", role="contributor")
    assert response.status_code == 200, response.text
    return {r["check"]: r for r in response.json()["results"]}


#: The sources of the end-to-end tests, PostgreSQL when the test command runs its server.
EACH_SOURCE = pytest.mark.parametrize(
    "source", ["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres), "parquet"]
)


def events_dataset(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, source: str, **declared: Any
) -> tuple[Any, Writer]:
    """The dataset ``events`` over a new connection to ``source``: its creation's answer and the writer."""
    params, write = SOURCES[source](tmp_path, request)
    kind = "files" if source == "parquet" else "sql"
    connection = {"name": "events_src", "type": kind, "params": params, "usable_by": {"mode": "everyone"}}
    assert api.request("POST", "/connections", role="admin", json=connection).status_code == 201
    location = {"path": "events.parquet"} if kind == "files" else {"table": "events"}
    body = {"name": "events", "connection": "events_src", **location, **declared}
    created = api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body)
    assert created.status_code == 201, created.text
    return created, write


@EACH_SOURCE
def test_the_freshness_check_judges_the_newest_value(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, source: str
) -> None:
    freshness = {"column": "event_time", "max_age": "26h"}
    created, write = events_dataset(api, tmp_path, request, source, freshness=freshness)
    assert created.json()["freshness"] == {"column": "event_time", "max_age": "26h"}
    check = {"name": "Fresh", "type": "freshness", "warn_after": "4h"}
    saved = api.request("POST", f"{ALPHA}/datasets/events/checks", role="contributor", json=check)
    assert saved.status_code == 201, saved.text

    stale = run_checks(api, "events")["Fresh"]
    assert stale["outcome"] == "ERROR"
    newest = datetime.fromisoformat(stale["value"]["newest"])
    assert newest.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - newest) - timedelta(days=3)) < timedelta(minutes=1)
    assert stale["message"] == f"newest event_time {stale['value']['newest']} is 3 days old (maximum 26h)"
    assert stale["value"]["max_age"] == "26h" and 3 * 86400 <= stale["value"]["age_seconds"] < 3 * 86400 + 60

    write([timedelta(hours=5), timedelta(days=2)])
    late = run_checks(api, "events")["Fresh"]
    assert late["outcome"] == "WARNING", late
    assert late["message"].endswith("is 5 hours old (warning after 4h, maximum 26h)")

    write([timedelta(minutes=30)])
    assert run_checks(api, "events")["Fresh"]["outcome"] == "OK"

    write([])
    empty = run_checks(api, "events")["Fresh"]
    assert (empty["outcome"], empty["value"]["newest"]) == ("EMPTY", None)
    assert empty["message"] == "event_time has no value (no row, or only nulls) (maximum 26h)"

    series = api.request("GET", f"{ALPHA}/datasets/events/metrics?metric=freshness.newest", role="reader").json()
    assert len(series) == 4 and series[-1]["value"] is None and series[0]["value"] == stale["value"]["newest"]
    ages = api.request("GET", f"{ALPHA}/datasets/events/metrics?metric=freshness.age_seconds", role="reader").json()
    assert ages[0]["value"] >= 3 * 86400
    computed = api.request("POST", f"{ALPHA}/datasets/events/metrics", role="contributor", json={}).json()
    assert {"freshness.newest", "freshness.age_seconds"} <= set(computed["values"])  # with the dataset's own


def test_files_without_a_column_use_modification_times(api: LiveAPI, tmp_path: Path) -> None:
    folder = tmp_path / "drops"
    folder.mkdir()
    for part in ("a", "b"):
        (folder / f"{part}.csv").write_text("id\n1\n")
    old = time.time() - 36 * 3600
    os.utime(folder / "a.csv", (old, old))
    os.utime(folder / "b.csv", (old - 3600, old - 3600))
    connection = {"name": "drops", "type": "files", "params": {"url": str(folder)}, "usable_by": {"mode": "everyone"}}
    assert api.request("POST", "/connections", role="admin", json=connection).status_code == 201
    body = {"name": "drops", "connection": "drops", "path": "*.csv", "freshness": {"max_age": "26h"}}
    assert api.request("POST", f"{ALPHA}/datasets", role="contributor", json=body).status_code == 201
    check = {"name": "Delivered", "type": "freshness"}
    assert api.request("POST", f"{ALPHA}/datasets/drops/checks", role="contributor", json=check).status_code == 201
    stale = run_checks(api, "drops")["Delivered"]
    assert stale["outcome"] == "ERROR"
    assert abs(datetime.fromisoformat(stale["value"]["newest"]).timestamp() - old) < 0.01  # a.csv, the newer
    assert stale["message"].startswith("newest file modification ") and "1.5 days old (maximum 26h)" in stale["message"]
    os.utime(folder / "b.csv")  # delivered now
    assert run_checks(api, "drops")["Delivered"]["outcome"] == "OK"


def test_bad_declarations_name_the_field_and_readers_cannot_change_them(api: LiveAPI) -> None:
    """On the seeded ``transactions`` (a SQLite table of the warehouse ``wh``)."""
    base = {"name": "tx2", "connection": "wh", "table": "transactions_2018"}
    cases = [
        ({"column": "nope", "max_age": "26h"}, "freshness.column", "no column 'nope'"),
        ({"max_age": "26h"}, "freshness.column", "names the timestamp column"),
        ({"column": "purchase_date", "max_age": "soon"}, "freshness.max_age", "max_age"),
        ({"column": "purchase_date", "max_age": "9999999999d"}, "freshness.max_age", "ten years"),
        ({"column": "purchase_date"}, "freshness.max_age", "required"),
        ({"column": "purchase_date", "max_age": "26h", "typo": 1}, "freshness.typo", ""),
    ]
    for freshness, field, words in cases:
        refused = api.request("POST", f"{ALPHA}/datasets", role="contributor", json={**base, "freshness": freshness})
        assert refused.status_code == 400, (freshness, refused.text)
        assert refused.json()["field"] == field and words in refused.json()["message"], refused.json()

    path = f"{ALPHA}/datasets/transactions"
    unknown = api.request("PATCH", path, role="contributor", json={"freshness": {"column": "x", "max_age": "1d"}})
    assert unknown.status_code == 400 and unknown.json()["field"] == "freshness.column"
    data_check = {"name": "Fresh", "type": "freshness"}
    undeclared = api.request("POST", f"{path}/checks", role="contributor", json=data_check)
    assert undeclared.status_code == 400 and "declares none" in undeclared.json()["message"]

    declared = {"freshness": {"column": "purchase_date", "max_age": "26h"}}
    denied = api.request("PATCH", path, role="reader", json=declared)
    assert denied.status_code == 403
    assert api.request("GET", path, role="reader").json()["freshness"] is None
    assert api.request("PATCH", path, role="contributor", json=declared).status_code == 200
    assert api.request("GET", path, role="reader").json()["freshness"] == declared["freshness"]
    assert api.request("PATCH", path, role="reader", json={"freshness": None}).status_code == 403

    for check, field in (
        ({**data_check, "max_age": "2d"}, "body"),
        ({**data_check, "warn_after": "30h"}, "warn_after"),
        ({"name": "R", "type": "range", "metric": "record_count", "min": 1, "warn_after": "1h"}, "body"),
    ):
        refused = api.request("POST", f"{path}/checks", role="contributor", json=check)
        assert refused.status_code == 400 and refused.json()["field"] == field, refused.json()
    assert api.request("POST", f"{path}/checks", role="contributor", json=data_check).status_code == 201
    described = api.request("GET", f"{path}/checks/Fresh", role="reader").json()
    assert (described["metric"], described["max_age"]) == (None, None)

    # The demo's purchase dates are years old; a declaration removed later makes the check an ERROR.
    assert run_checks(api, "transactions")["Fresh"]["outcome"] == "ERROR"
    assert api.request("PATCH", path, role="contributor", json={"freshness": None}).status_code == 200
    assert api.request("GET", path, role="reader").json()["freshness"] is None
    orphan = run_checks(api, "transactions")["Fresh"]
    assert orphan["outcome"] == "ERROR" and "declares no freshness" in orphan["message"]


def test_a_freshness_check_with_a_metric_keeps_judging_its_computation(api: LiveAPI) -> None:
    """Checks stored before the data's freshness existed keep their meaning, declared or not."""
    path = f"{ALPHA}/datasets/transactions"
    legacy = {"name": "Counted lately", "type": "freshness", "metric": "record_count", "max_age": "36h"}
    assert api.request("POST", f"{path}/checks", role="contributor", json=legacy).status_code == 201
    never = run_checks(api, "transactions")["Counted lately"]
    assert (never["outcome"], never["message"]) == ("EMPTY", "record count has never been computed")
    declared = {"freshness": {"column": "purchase_date", "max_age": "26h"}}
    assert api.request("PATCH", path, role="contributor", json=declared).status_code == 200
    assert api.request("POST", f"{path}/metrics", role="contributor", json={}).status_code == 200
    judged = run_checks(api, "transactions")["Counted lately"]
    assert judged["outcome"] == "OK" and judged["message"].startswith("last record count is ")
    assert judged["value"]["max_age"] == "36h" and judged["value"]["value"] == 300


def test_a_bundle_carries_the_declaration(api: LiveAPI, plane: ControlPlane) -> None:
    admin = plane.users.caller_for("admin")
    path = f"{ALPHA}/datasets/transactions"
    declared = {"column": "purchase_date", "max_age": "26h"}
    assert api.request("PATCH", path, role="contributor", json={"freshness": declared}).status_code == 200
    first = plane.bundles.create_bundle(admin, "ALPHA", note="declared")
    assert (
        api.request("PATCH", path, role="contributor", json={"freshness": {**declared, "max_age": "2d"}}).status_code
        == 200
    )
    second = plane.bundles.create_bundle(admin, "ALPHA", note="relaxed")
    rolled = plane.bundles.activate(admin, "ALPHA", first.version)
    assert {(c.kind, c.name, c.change) for c in rolled.changes} == {("dataset", "transactions", "changed")}
    assert api.request("GET", path, role="reader").json()["freshness"] == declared
    plane.bundles.activate(admin, "ALPHA", second.version)
    assert api.request("GET", path, role="reader").json()["freshness"] == {**declared, "max_age": "2d"}


def test_the_cli_declares_and_shows_freshness(api: LiveAPI, plane: ControlPlane) -> None:
    runner = CliRunner()
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}

    def dataset(role: str, *arguments: str) -> Any:
        common = ["--home", plane.home, "--db-url", plane.db.url, "--as", role, "--json", "dataset"]
        return runner.invoke(main, [*common, *arguments], env=environment)

    update = ["update", "ALPHA", "transactions"]
    declared = dataset("contributor", *update, "--freshness-column", "purchase_date", "--freshness-max-age", "26h")
    assert declared.exit_code == 0, declared.output
    assert json.loads(declared.output)["freshness"] == {"column": "purchase_date", "max_age": "26h"}
    relaxed = dataset("contributor", *update, "--freshness-max-age", "2d")  # the column stays
    assert json.loads(relaxed.output)["freshness"] == {"column": "purchase_date", "max_age": "2d"}
    shown = json.loads(dataset("reader", "show", "ALPHA", "transactions").output)
    assert shown["freshness"] == {"column": "purchase_date", "max_age": "2d"}
    listed = json.loads(dataset("reader", "list", "ALPHA").output)
    assert [d["freshness"] for d in listed["items"]] == [{"column": "purchase_date", "max_age": "2d"}]
    bad = dataset("contributor", *update, "--freshness-column", "nope")
    assert bad.exit_code == 1 and "no column 'nope'" in bad.output
    assert dataset("reader", *update, "--no-freshness").exit_code == 1
    removed = dataset("contributor", *update, "--no-freshness")
    assert removed.exit_code == 0 and json.loads(removed.output)["freshness"] is None
    assert freshness_text({"column": None, "max_age": "26h"}) == "files modified within 26h"
    assert freshness_text({"column": "purchase_date", "max_age": "2d"}) == "purchase_date within 2d"


def test_a_manifest_declares_freshness_idempotently(plane: ControlPlane) -> None:
    from himalia.data.manifest import apply_manifest, load_manifest

    contributor = plane.users.caller_for("contributor")

    def apply(max_age: str) -> list[str]:
        text = (
            "project: ALPHA\n"
            "datasets:\n"
            "  - {name: tx, connection: wh, table: transactions_2018,\n"
            f"     freshness: {{column: purchase_date, max_age: {max_age}}},\n"
            "     checks: [{name: Fresh, type: freshness, warn_after: 20h}]}\n"
        )
        return apply_manifest(plane, contributor, load_manifest(text, "tx.yaml"), "tx.yaml")

    assert apply("26h") == ["created dataset ALPHA/tx", "created check tx/Fresh"]
    assert apply("26h") == ["unchanged dataset ALPHA/tx", "unchanged check tx/Fresh"]
    assert apply("2d") == ["updated dataset ALPHA/tx", "unchanged check tx/Fresh"]
    assert plane.datasets.get_dataset(contributor, "ALPHA", "tx").freshness.max_age == "2d"  # type: ignore[union-attr]
