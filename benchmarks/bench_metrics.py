"""Probes pushed down to the data, against pandas and against one hand-written query.

One run:

1. writes a 10-million-row Parquet file with DuckDB (``COPY (SELECT ... FROM range(N)) TO ...``):
   a BIGINT ``a`` (~2M distinct values), a DOUBLE ``b`` (~1M distinct) and an INTEGER ``c``
   (1,000 distinct), each with NULLs sprinkled (1/17, 1/29, 1/11 of the rows);
2. loads a 2-million-row table of the same shape into PostgreSQL: a throw-away server
   (``tests.postgres.TemporaryPostgres``) unless ``--db-url`` names a database, where the table
   ``himalia_bench_metrics`` is created and dropped at the end;
3. computes ``record_count`` and min, max, avg, sum, count, null_count, distinct_count and
   stddev of the three columns (25 numbers) three ways, each in an interpreter of its own kept
   for the comparison:

   * ``probes``  ``himalia.data.probes.compute_files`` (end to end: fsspec look-up, type
     description, one aggregate statement) / ``compute_sql`` as the control plane runs it, through
     ``drivers.SqlSources`` (the engine and the table's columns kept between computations: one
     aggregate statement);
   * ``hand``    ONE hand-written SELECT computing the same 25 numbers: the physical floor, one
     scan;
   * ``pandas``  loading the columns into pandas (``read_parquet`` / ``read_sql``) and computing
     the numbers there.

4. does it all again without ``distinct_count`` (22 numbers): exact distinct counts dominate every
   approach's time, and this round shows the rest (``--no-cheap`` skips it).

After one untimed warm-up run each, ``--runs`` rounds run every approach once, in an order that
rotates. It prints the median and spread (min-max) of each, the ratios against
pandas (target: >= 10x faster) and against the hand-written query (target: within 1.2x), and
each subprocess's peak RSS (``os.wait4``). For PostgreSQL that is the client's memory only: the
server's is not counted. The three approaches' numbers are cross-checked. It never asserts
timings.

    .venv/bin/python benchmarks/bench_metrics.py                     # full size, ~2 minutes
    .venv/bin/python benchmarks/bench_metrics.py --rows-scale 0.05   # a quick run
    .venv/bin/python benchmarks/bench_metrics.py --db-url postgresql+psycopg://user@host/emptydb
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("a", "b", "c")
STATS = ("min", "max", "avg", "sum", "count", "null_count", "distinct_count", "stddev")
#: The same minus the exact distinct counts, which dominate every approach's time.
CHEAP_STATS = tuple(stat for stat in STATS if stat != "distinct_count")
TABLE = "himalia_bench_metrics"
PARQUET_ROWS = 10_000_000
POSTGRES_ROWS = 2_000_000

#: The same three columns from row number ``i`` in DuckDB and in PostgreSQL.
DUCKDB_SELECT = """
SELECT
    CASE WHEN i % 17 = 0 THEN NULL ELSE (hash(i) % 2000003)::BIGINT - 1000000 END AS a,
    CASE WHEN i % 29 = 3 THEN NULL ELSE (hash(i + 7) % 1000003)::DOUBLE / 1000.0 - 500.0 END AS b,
    CASE WHEN i % 11 = 5 THEN NULL ELSE (hash(i + 13) % 1000)::INTEGER END AS c
FROM range({rows}) AS t(i)
"""
POSTGRES_INSERT = f"""
INSERT INTO {TABLE} (a, b, c)
SELECT
    CASE WHEN i % 17 = 0 THEN NULL ELSE (i * 7919) % 2000003 - 1000000 END,
    CASE WHEN i % 29 = 3 THEN NULL ELSE ((i * 104729) % 1000003) / 1000.0 - 500.0 END,
    CASE WHEN i % 11 = 5 THEN NULL ELSE ((i * 31) % 1000)::integer END
FROM generate_series(0, CAST(:rows AS bigint) - 1) AS s(i)
"""


SQL = {
    "min": "min({})",
    "max": "max({})",
    "avg": "avg({})",
    "sum": "sum({})",
    "count": "count({})",
    "null_count": "count(*) - count({})",
    "distinct_count": "count(DISTINCT {})",
    "stddev": "stddev_samp({})",
}
PANDAS = {
    "min": lambda series: series.min(),
    "max": lambda series: series.max(),
    "avg": lambda series: series.mean(),
    "sum": lambda series: series.sum(),
    "count": lambda series: series.count(),
    "null_count": lambda series: series.isna().sum(),
    "distinct_count": lambda series: series.nunique(),
    "stddev": lambda series: series.std(),
}


def probe_ids(stats: tuple[str, ...]) -> list[str]:
    return ["record_count", *(f"{stat}:{column}" for column in COLUMNS for stat in stats)]


def hand_written(source: str, stats: tuple[str, ...]) -> str:
    """One SELECT computing the same numbers: what a person would write, one scan."""
    parts = ["count(*)", *(SQL[stat].format(column) for column in COLUMNS for stat in stats)]
    return f"SELECT {', '.join(parts)} FROM {source}"


def as_results(row: Any, stats: tuple[str, ...]) -> dict[str, Any]:
    return dict(zip(probe_ids(stats), row, strict=True))


def from_pandas(frame: Any, stats: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {"record_count": len(frame)}
    for column in COLUMNS:
        results.update({f"{stat}:{column}": PANDAS[stat](frame[column]) for stat in stats})
    return results


# -- one approach, in a subprocess of its own -----------------------------------------------------


def child(approach: str, target: str, stats: tuple[str, ...]) -> None:
    """Run one approach each time a line comes on stdin; answer each with its time and numbers as JSON."""
    location = os.environ["HIMALIA_BENCH_LOCATION"]  # not on the command line: it may hold a password
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    from himalia.data.drivers import SqlSources, UsableConnection
    from himalia.data.probes import compute_files, compute_sql

    engine = sa.create_engine(location) if target == "postgres" else None
    # The control plane's path: the engine and the table's columns kept between computations.
    usable = UsableConnection(name="bench", type="sql", params={"url": location}, secrets={}, allow_write=False)
    sources = SqlSources()

    def once() -> dict[str, Any]:
        if approach == "idle":
            return {}
        if target == "parquet":
            if approach == "probes":
                return compute_files(location, "parquet", probe_ids(stats))
            if approach == "hand":
                with duckdb.connect() as connection:
                    row = connection.execute(hand_written("read_parquet(?)", stats), [location]).fetchone()
                    return as_results(row, stats)
            return from_pandas(pd.read_parquet(location, columns=list(COLUMNS)), stats)
        assert engine is not None
        if approach == "probes":
            ids = probe_ids(stats)
            return sources.compute(usable, {"table": TABLE}, "", lambda bound, source: compute_sql(bound, source, ids))
        if approach == "hand":
            with engine.connect() as connection:
                return as_results(connection.exec_driver_sql(hand_written(TABLE, stats)).one(), stats)
        with engine.connect() as connection:
            return from_pandas(pd.read_sql(sa.text(f"SELECT a, b, c FROM {TABLE}"), connection), stats)

    for _ in sys.stdin:
        start = time.perf_counter()
        results = once()
        elapsed = time.perf_counter() - start
        answer = {"time": elapsed, "results": {key: plain(value) for key, value in results.items()}}
        print(json.dumps(answer), flush=True)


def plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if value is None or isinstance(value, (int, float, str)):
        return value
    return float(value)  # Decimal


class Approach:
    """One approach's interpreter, kept for the whole comparison (its peak RSS read when it ends)."""

    def __init__(self, name: str, target: str, location: str, stats: tuple[str, ...]) -> None:
        self.name, self.times, self.results = name, list[float](), dict[str, Any]()
        command = [sys.executable, __file__, "--child", name, target, "--stats", ",".join(stats)]
        environment = {**os.environ, "HIMALIA_BENCH_LOCATION": location, "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
        )

    def run(self) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} failed ({self.process.wait()})")
        answer = json.loads(line)
        self.results = answer["results"]
        return float(answer["time"])

    def close(self) -> float:
        """End the interpreter; its peak RSS in MiB."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        _, status, usage = os.wait4(self.process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{self.name} failed ({os.waitstatus_to_exitcode(status)})")
        return usage.ru_maxrss / 1024


def measure(
    names: tuple[str, ...], target: str, location: str, runs: int, stats: tuple[str, ...]
) -> dict[str, tuple[list[float], dict[str, Any], float]]:
    """Each approach in its own interpreter, one warm-up run each, then ``runs`` rounds whose order
    rotates; per approach its times, numbers and peak RSS."""
    approaches = [Approach(name, target, location, stats) for name in names]
    try:
        for approach in approaches:
            approach.run()
        for round_number in range(runs):
            shift = round_number % len(approaches)
            for approach in approaches[shift:] + approaches[:shift]:
                approach.times.append(approach.run())
    finally:
        peaks = {approach.name: approach.close() for approach in approaches}
    return {a.name: (a.times, a.results, peaks[a.name]) for a in approaches}


# -- data -----------------------------------------------------------------------------------------


def write_parquet(path: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect() as connection:
        select = DUCKDB_SELECT.format(rows=int(rows))
        quoted = str(path).replace("'", "''")
        connection.execute(f"COPY ({select}) TO '{quoted}' (FORMAT parquet)")


def load_postgres(url: str, rows: int) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
            connection.execute(sa.text(f"CREATE TABLE {TABLE} (a bigint, b double precision, c integer)"))
            connection.execute(sa.text(POSTGRES_INSERT), {"rows": rows})
            connection.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))
    finally:
        engine.dispose()


def drop_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
    finally:
        engine.dispose()


# -- report ---------------------------------------------------------------------------------------


def agree(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """Probe ids whose numbers differ beyond float rounding (1e-9 relative)."""
    differ = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if isinstance(a, float) and math.isnan(a):
            a = None
        if isinstance(b, float) and math.isnan(b):
            b = None
        if a is None or b is None:
            if a is not b:
                differ.append(key)
        elif not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9):
            differ.append(key)
    return differ


def bench(target: str, location: str, rows: int, runs: int, stats: tuple[str, ...]) -> None:
    what = "8 statistics" if stats == STATS else f"{len(stats)} statistics, no distinct_count"
    print(f"\n{target}: {rows:,} rows, {len(probe_ids(stats))} numbers (record_count + {what} x 3 columns)")
    approaches = ("probes", "hand", "pandas", "idle") if stats == STATS else ("probes", "hand", "pandas")
    measured = measure(approaches, target, location, runs, stats)
    probes_median = statistics.median(measured["probes"][0])
    hand_median = statistics.median(measured["hand"][0])
    pandas_median = statistics.median(measured["pandas"][0])
    print(f"  {'approach':<28}{'median':>10}{'min-max':>18}{'peak RSS':>12}")
    for name, label in [
        ("probes", "probes (pushed down)"),
        ("hand", "hand-written single SELECT"),
        ("pandas", "pandas (load + compute)"),
        ("idle", "interpreter + imports only"),
    ]:
        if name not in measured:
            continue
        times, _, rss = measured[name]
        spread = f"{min(times):.3f}-{max(times):.3f} s" if name != "idle" else "-"
        median = f"{statistics.median(times):.3f} s" if name != "idle" else "-"
        print(f"  {label:<28}{median:>10}{spread:>18}{rss:>9.0f} MiB")
    print(f"  pandas / probes:  {pandas_median / probes_median:6.1f}x   (target >= 10x)")
    print(f"  probes / hand:    {probes_median / hand_median:6.2f}x   (target <= 1.2x)")
    if target == "postgres":
        print("  (peak RSS is the client process's; the PostgreSQL server's memory is not counted)")
    for other in ("hand", "pandas"):
        differ = agree(measured["probes"][1], measured[other][1])
        verdict = "agree" if not differ else f"DIFFER on {', '.join(differ)}"
        print(f"  probes vs {other}: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-scale", type=float, default=1.0, help="shrink (or grow) both datasets")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per approach (after one warm-up)")
    parser.add_argument("--db-url", help="an empty PostgreSQL database instead of a throw-away server")
    parser.add_argument("--only", choices=["parquet", "postgres"], help="run one of the two halves")
    parser.add_argument(
        "--no-cheap", action="store_true", help="skip the second round without distinct_count (saves ~40%%)"
    )
    parser.add_argument("--child", nargs=2, metavar=("APPROACH", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--stats", default=",".join(STATS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        approach, target = args.child
        child(approach, target, stats=tuple(args.stats.split(",")))
        return 0
    rounds = [STATS] if args.no_cheap else [STATS, CHEAP_STATS]

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="himalia-bench-metrics-"))
    server = None
    db_url = args.db_url
    try:
        if args.only != "postgres":
            rows = max(int(PARQUET_ROWS * args.rows_scale), 1)
            path = folder / "data.parquet"
            t0 = time.perf_counter()
            write_parquet(path, rows)
            size = path.stat().st_size / 2**20
            print(f"wrote {rows:,} rows of Parquet ({size:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
            for stats in rounds:
                bench("parquet", str(path), rows, args.runs, stats)
        if args.only != "parquet":
            rows = max(int(POSTGRES_ROWS * args.rows_scale), 1)
            if db_url is None:
                sys.path.insert(0, str(ROOT))
                from tests.postgres import TemporaryPostgres, find_bindir

                bindir = find_bindir()
                if bindir is None:
                    print("PostgreSQL is not installed (scripts/install-system-deps.sh); pass --db-url")
                    return 1
                server = TemporaryPostgres(bindir)
                db_url = server.start()
            t0 = time.perf_counter()
            load_postgres(db_url, rows)
            print(f"\nloaded {rows:,} rows into PostgreSQL in {time.perf_counter() - t0:.1f} s")
            for stats in rounds:
                bench("postgres", db_url, rows, args.runs, stats)
    finally:
        if db_url is not None and server is None:
            drop_postgres(db_url)
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
