"""Attack class 22, row conditions: what a person writes into a condition (a pattern, allowed
values, a column name) and what the data holds reach SQL, the control plane's own matcher and the
notebook's HTML; every variant must stay data.

- patterns that make a backtracking matcher take exponential time, matched by SQLite in this
  process (RE2: linear) and by DuckDB, bounded in time;
- values and patterns that would change a statement if they were written into it, on SQLite and
  on files scanned by DuckDB: bound, the table intact, the counts exact;
- column names that are SQL: no such column, named in the refusal;
- markup in a dataset's description, columns, checks' messages and metric names: escaped in the
  kernel client's cards, which an exported notebook shows as HTML.
"""

import re
import sqlite3
import time
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from himalia.core.errors import InvalidInput
from himalia.data.access import DataAccessPolicy
from himalia.data.drivers import UsableConnection, sql_engine
from himalia.data.probes import compute_files, compute_sql, failing_rows_of_files, failing_rows_of_sql
from himalia.kernel import widgets
from himalia.wire.data import RowCondition

from .conftest import Ledger

ATTACK = "22 row conditions"
#: Patterns that make a backtracking matcher take exponential time on a long run of one character.
CATASTROPHIC = ["(a+)+$", "(a|a)*$", "(a|aa)+$", "(a*)*b", "(.*a){25}", "^(a?){30}a{30}$", "(\\w+\\s?)+$", "(a+)+[^a]b"]
#: Text that would change a statement if it were ever written into SQL instead of bound.
HOSTILE = ["'; DROP TABLE orders; --", "paid' OR '1'='1", 'paid" OR "1"="1', "\\'; SELECT 1; --", "%", "_", "\x00paid"]
#: Markup that would run or restyle the page if it were not escaped.
MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "'\"><svg onload=alert(1)>", "&lt;b&gt;"]
ROWS = [(i, "a" * (40 + i) + "!", "paid") for i in range(200)]


def sources(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """The same rows in SQLite (opened as the control plane opens it) and in a Parquet file."""
    database, parquet = tmp_path / "orders.sqlite", tmp_path / "orders.parquet"
    with sqlite3.connect(database) as sqlite:
        sqlite.execute("CREATE TABLE orders (id INTEGER, code TEXT, status TEXT)")
        sqlite.executemany("INSERT INTO orders VALUES (?, ?, ?)", ROWS)
    with duckdb.connect() as duck:
        duck.execute("CREATE TABLE orders (id INTEGER, code VARCHAR, status VARCHAR)")
        duck.executemany("INSERT INTO orders VALUES (?, ?, ?)", ROWS)
        duck.execute(f"COPY orders TO '{parquet}' (FORMAT parquet)")
    return {"sqlite": ("sql", f"sqlite:///{database}"), "parquet": ("files", str(parquet))}


def count_and_sample(kind: str, location: str, condition: RowCondition) -> tuple[int, list[list[object]]]:
    probe = f"invalid_count:{condition.name}"
    if kind == "files":
        values = compute_files(location, "parquet", [probe], conditions=[condition])
        sample = failing_rows_of_files(location, "parquet", condition, 5)
        return values[probe], sample["rows"]
    usable = UsableConnection(
        name="orders", type="sql", params={"url": location}, secrets={}, allow_write=False, policy=DataAccessPolicy()
    )
    engine = sql_engine(usable)
    try:
        values = compute_sql(engine, sa.table("orders"), [probe], [condition])
        return values[probe], failing_rows_of_sql(engine, sa.table("orders"), condition, 5)["rows"]
    finally:
        engine.dispose()


def test_no_pattern_holds_the_control_plane(tmp_path: Path, ledger: Ledger) -> None:
    for source, (kind, location) in sources(tmp_path).items():
        for pattern in CATASTROPHIC:
            started = time.monotonic()
            count, sample = count_and_sample(kind, location, RowCondition(name="c", column="code", pattern=pattern))
            bounded = time.monotonic() - started < 10  # Python's re takes hours on the first of these
            consistent = (count == 0) == (not sample) and len(sample) <= 5
            assert ledger.tried(ATTACK, f"{source}: {pattern}", refused=bounded and consistent), (source, pattern)


def test_values_and_patterns_are_bound_never_written_into_sql(tmp_path: Path, ledger: Ledger) -> None:
    for source, (kind, location) in sources(tmp_path).items():
        for hostile in HOSTILE:
            for condition in (
                RowCondition(name="listed", column="status", values=[hostile]),
                RowCondition(name="matched", column="status", pattern=re.escape(hostile)),
            ):
                count, _ = count_and_sample(kind, location, condition)
                assert ledger.tried(ATTACK, f"{source}: {condition.rule} {hostile!r}", refused=count == len(ROWS))
        if kind == "sql":
            with sqlite3.connect(location.removeprefix("sqlite:///")) as database:
                assert database.execute("SELECT count(*) FROM orders").fetchone() == (len(ROWS),)


def test_a_column_name_that_is_sql_is_no_column(tmp_path: Path, ledger: Ledger) -> None:
    for source, (kind, location) in sources(tmp_path).items():
        for hostile in [*HOSTILE, 'code" IS NULL OR "1"="1', "code) OR (1=1"]:
            condition = RowCondition(name="c", column=hostile, not_null=True)
            with pytest.raises(InvalidInput, match="has no column") as refused:
                count_and_sample(kind, location, condition)
            assert ledger.tried(ATTACK, f"{source}: column {hostile!r}", refused=refused.value.field == "conditions")


def test_markup_in_what_the_platform_answers_is_escaped_in_the_notebook(ledger: Ledger) -> None:
    for markup in MARKUP:
        card = widgets.dataset_html(
            {
                "project": markup,
                "dataset": {
                    "name": markup,
                    "description": markup,
                    "connection": markup,
                    "table": markup,
                    "columns": [{"name": markup, "type": markup}],
                },
                "checks": [{"name": markup, "last_result": {"outcome": markup, "message": markup}}],
                "history": {markup: [1.0, 2.0]},
            }
        )
        checks = widgets.checks_html(
            markup, {"outcome": markup, "results": [{"check": markup, "outcome": markup, "message": markup}]}
        )
        run = widgets.run_html(
            {
                "id": 1,
                "scenario": markup,
                "state": markup,
                "steps": [{"name": markup, "state": markup, "message": markup}],
            },
            markup,
        )
        for shown in (card, checks, run):
            assert ledger.tried(ATTACK, f"markup {markup!r}", refused=markup not in shown)
