"""Row conditions pushed down to the data, against one hand-written query and against pandas.

One run writes a Parquet file (DuckDB scans it) and a SQLite table of the same rows: an
``amount`` DOUBLE (1 in 50 negative, 1 in 40 NULL), a ``code`` text (1 in 100 not ``XX-9999``),
a ``status`` text (1 in 80 outside the allowed values) and an ``id`` (1 in 1000 repeated). It
counts the rows breaking five conditions (``min``, ``pattern``, ``values``, ``not_null``,
``unique``) with their percentages, three ways, interleaved over ``--runs`` rounds:

* ``probes``  ``himalia.data.probes.compute_files`` / ``compute_sql``: the conditions folded into
  the one aggregate statement (with ``record_count``), as a check run computes them;
* ``hand``    ONE hand-written SELECT of the same counts (``SUM(CASE ...)``, ``count - count
  DISTINCT``): the floor;
* ``pandas``  the columns loaded and the counts computed there.

It then times one failing-rows sample (``failing_rows_of_files``, a ``LIMIT 10`` statement). It
prints medians, spreads and the ratios (targets: within 1.2x of the hand-written query, far below
pandas); the three answers are cross-checked. It never asserts timings.

    .venv/bin/python benchmarks/bench_conditions.py               # 5M Parquet rows, 1M SQLite rows
    .venv/bin/python benchmarks/bench_conditions.py --scale 0.1   # a quick run
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import sqlalchemy as sa

from himalia.data.probes import compute_files, compute_sql, failing_rows_of_files
from himalia.wire.data import RowCondition

CONDITIONS = [
    RowCondition(name="positive", column="amount", min=0),
    RowCondition(name="code_ok", column="code", pattern=r"^[A-Z]{2}-\d{4}$"),
    RowCondition(name="known", column="status", values=["paid", "refunded", "open"]),
    RowCondition(name="has_amount", column="amount", not_null=True),
    RowCondition(name="one_id", column="id", unique=True),
]
PROBES = ["record_count", *(f"invalid_count:{c.name}" for c in CONDITIONS)]
ROWS_SQL = """
SELECT CASE WHEN i % 1000 = 0 THEN i - 1 ELSE i END AS id,
       CASE WHEN i % 40 = 0 THEN NULL WHEN i % 50 = 0 THEN -1.0 * (i % 7 + 1) ELSE (i % 997) * 1.5 END AS amount,
       CASE WHEN i % 100 = 0 THEN 'bad' || i ELSE 'AB-' || lpad(CAST(i % 10000 AS VARCHAR), 4, '0') END AS code,
       CASE WHEN i % 80 = 0 THEN 'lost' WHEN i % 3 = 0 THEN 'open' ELSE 'paid' END AS status
FROM range({rows}) AS t(i)
"""
HAND = """
SELECT count(*) AS record_count,
       sum(CASE WHEN amount < 0 THEN 1 ELSE 0 END) AS positive,
       sum(CASE WHEN NOT regexp_matches(code, '^[A-Z]{{2}}-\\d{{4}}$') THEN 1 ELSE 0 END) AS code_ok,
       sum(CASE WHEN status NOT IN ('paid', 'refunded', 'open') THEN 1 ELSE 0 END) AS known,
       sum(CASE WHEN amount IS NULL THEN 1 ELSE 0 END) AS has_amount,
       count(id) - count(DISTINCT id) AS one_id
FROM {source}
"""
PATTERN = re.compile(r"^[A-Z]{2}-\d{4}$")


def write_data(folder: Path, parquet_rows: int, sqlite_rows: int) -> tuple[Path, Path]:
    parquet, database = folder / "orders.parquet", folder / "orders.sqlite"
    with duckdb.connect() as duck:
        duck.execute(f"COPY ({ROWS_SQL.format(rows=parquet_rows)}) TO '{parquet}' (FORMAT parquet)")
        frame = duck.execute(ROWS_SQL.format(rows=sqlite_rows)).df()
    with sqlite3.connect(database) as sqlite:
        frame.to_sql("orders", sqlite, index=False)
    return parquet, database


def by_pandas(frame: pd.DataFrame) -> dict[str, int]:
    codes = frame["code"].dropna()
    return {
        "record_count": len(frame),
        "positive": int((frame["amount"] < 0).sum()),
        "code_ok": int((~codes.map(lambda text: bool(PATTERN.search(text)))).sum()),
        "known": int((frame["status"].notna() & ~frame["status"].isin(["paid", "refunded", "open"])).sum()),
        "has_amount": int(frame["amount"].isna().sum()),
        "one_id": int(frame["id"].count() - frame["id"].nunique()),
    }


def plain(values: dict[str, Any]) -> dict[str, int]:
    return {key.removeprefix("invalid_count:"): int(value) for key, value in values.items()}


def rounds(approaches: dict[str, Callable[[], dict[str, int]]], runs: int) -> dict[str, list[float]]:
    answers = {name: run() for name, run in approaches.items()}  # warm-up, and the cross-check
    first = next(iter(answers.values()))
    for name, answer in answers.items():
        assert answer == first, (name, answer, first)
    times: dict[str, list[float]] = {name: [] for name in approaches}
    names = list(approaches)
    for index in range(runs):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            started = time.perf_counter()
            approaches[name]()
            times[name].append(time.perf_counter() - started)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:7s} {medians[name] * 1000:8.1f} ms  ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})")
    print(f"  probes / hand   {medians['probes'] / medians['hand']:.2f}x   (target: <= 1.2)")
    print(f"  probes / pandas {medians['probes'] / medians['pandas']:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="himalia-bench-conditions-") as folder:
        parquet, database = write_data(Path(folder), int(5_000_000 * arguments.scale), int(1_000_000 * arguments.scale))

        def duck_hand() -> dict[str, int]:
            with duckdb.connect() as duck:
                row = duck.execute(HAND.format(source=f"read_parquet('{parquet}')")).fetchone()
            assert row is not None
            return dict(zip(["record_count", *(c.name for c in CONDITIONS)], map(int, row), strict=True))

        files = {
            "probes": lambda: plain(compute_files(str(parquet), "parquet", PROBES, conditions=CONDITIONS)),
            "hand": duck_hand,
            "pandas": lambda: by_pandas(pd.read_parquet(parquet)),
        }
        report(
            f"Parquet, {int(5_000_000 * arguments.scale):,} rows, DuckDB scanning in place",
            rounds(files, arguments.runs),
        )

        from himalia.data.access import DataAccessPolicy
        from himalia.data.drivers import UsableConnection, sql_engine

        usable = UsableConnection(
            name="orders",
            type="sql",
            params={"url": f"sqlite:///{database}"},
            secrets={},
            allow_write=False,
            policy=DataAccessPolicy(),
        )
        engine = sql_engine(usable)  # as the control plane opens it: read-only, REGEXP by RE2
        source = sa.table(
            "orders",
            sa.column("id", sa.Integer()),
            sa.column("amount", sa.Float()),
            sa.column("code", sa.String()),
            sa.column("status", sa.String()),
        )
        from himalia.core.patterns import search

        def sqlite_hand() -> dict[str, int]:
            with sqlite3.connect(database) as sqlite:
                sqlite.create_function("regexp", 2, search, deterministic=True)  # RE2, as the probes match
                sql = HAND.format(source="orders").replace(
                    "NOT regexp_matches(code, '^[A-Z]{2}-\\d{4}$')", "NOT (code REGEXP '^[A-Z]{2}-\\d{4}$')"
                )
                row = sqlite.execute(sql).fetchone()
            return dict(zip(["record_count", *(c.name for c in CONDITIONS)], map(int, row), strict=True))

        tables = {
            "probes": lambda: plain(compute_sql(engine, source, PROBES, CONDITIONS)),
            "hand": sqlite_hand,
            "pandas": lambda: by_pandas(pd.read_sql("SELECT * FROM orders", engine)),
        }
        report(
            f"SQLite, {int(1_000_000 * arguments.scale):,} rows (RE2 matching in this process)",
            rounds(tables, arguments.runs),
        )

        samples = []
        for _ in range(arguments.runs):
            started = time.perf_counter()
            sample = failing_rows_of_files(str(parquet), "parquet", CONDITIONS[1], 10)
            samples.append(time.perf_counter() - started)
        assert len(sample["rows"]) == 10
        print(f"\nA sample of 10 failing rows (pattern), Parquet: {statistics.median(samples) * 1000:.1f} ms median")


if __name__ == "__main__":
    main()
