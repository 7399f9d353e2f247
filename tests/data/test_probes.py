"""Probes pushed down to SQLite, DuckDB, PostgreSQL and DuckDB-over-files agree with pandas.

Hypothesis draws small tables (integer, float, text and boolean columns under arbitrary
names; NULLs; no row, one row; non-BMP text; floats up to ±1e300 and the whole int64 range),
loads each into an engine or writes it as a file, computes every probe there and compares it
with pandas on the same data:

* counts, ``min``/``max``, ``distinct_count`` and ``top_values`` must be equal exactly;
* float sums and means within the forward error bound of any summation order,
  ``4·n·eps·Σ|x|`` (engines and numpy sum in different orders: ``[1e300, 1, -1e300]`` is 0 or
  1 depending on it, and both are right to that bound);
* ``stddev`` within ``1e-12`` relative plus ``16·n·eps·max|x|`` absolute, the rounding any
  float algorithm makes on deviations from a mean of that size.

Where pandas itself is not exact the reference is, and the assertion does not loosen:

* an integer ``sum`` is compared with Python's exact integer sum: pandas' int64 sum wraps
  around silently past 2**63, the engines return the exact integer;
* ``stddev`` of values near ±1e300 overflows in pandas (the squared deviations pass 1e308 and
  it answers ``inf``); there the reference is ``statistics.stdev`` (exact rational arithmetic)
  and the probe must give that finite value;
* ``sum`` of no value is ``None``, as in SQL (pandas' default ``min_count=0`` says 0, so the
  reference is ``Series.sum(min_count=1)``).

Generation is restricted, not the assertions, where a representation cannot carry the data:
floats are finite (SQLite stores NaN as NULL, PostgreSQL as a value: no common meaning); text
has no NUL (PostgreSQL refuses it) and no lone surrogate (not UTF-8); column names are unique
ignoring case (SQLite and DuckDB fold case) and at most 63 bytes (PostgreSQL truncates). CSV
carries no types, so DuckDB sniffs them: a CSV table has at least one row and each numeric
column at least one value (else the column reads as text), and its text values start with a
letter and have no control character (else ``"12"`` reads as a number, ``"true"`` as a
boolean, ``""`` as NULL).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from himalia.core.errors import InvalidInput
from himalia.data.drivers import sql_source
from himalia.data.probes import (
    COLUMN_STATS,
    TABLE_STATS,
    Probe,
    compute_files,
    compute_sql,
    parse_probe,
    parse_probes,
)

from ..postgres import TemporaryPostgres

#: pandas' own std() of values near ±1e300 overflows (the reason for the exact reference there).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in square:RuntimeWarning")
EPS = sys.float_info.epsilon
SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KINDS = ("int", "float", "text", "bool")
SQL_TYPES = {"int": sa.BigInteger, "float": sa.Double, "text": sa.Text, "bool": sa.Boolean}
ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "bool": pa.bool_()}
PANDAS_TYPES = {"int": "Int64", "float": "float64", "text": "object", "bool": "boolean"}
NUMERIC_STATS = ("avg", "sum", "stddev")
ORDINARY_STATS = [stat for stat in COLUMN_STATS if stat not in NUMERIC_STATS]

# -- data -----------------------------------------------------------------------------------------

INTS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**62, 2**63 - 1),  # sums past 2**63, squares past 1e37
    st.integers(-(2**63), -(2**62)),
    st.sampled_from([0, 1, -1, 2**62, -(2**62), 2**63 - 1, -(2**63)]),
    st.integers(-1000, 1000),
)
FLOATS = st.one_of(
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 5e-324, 0.1, 1.5, 2.0**53, 1e16]),
)
TEXT_CHARACTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXTS = st.one_of(
    st.text(TEXT_CHARACTERS, max_size=6),
    st.sampled_from(["", "a", "B", "é", "e\u0301", "😀", "\U0010fffd", "Z", " "]),
)
CSV_TEXTS = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("abcXYZéß"),
    st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=5),
)
BOOLS = st.booleans()
VALUES = {"int": INTS, "float": FLOATS, "text": TEXTS, "bool": BOOLS}
NAMES = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(
    lambda name: len(name.encode()) <= 63
)
#: DuckDB's CSV reader trims the white space around header names: a CSV cannot carry " x ".
CSV_NAMES = NAMES.filter(lambda name: name == name.strip() and name.strip() != "")


@dataclass
class Data:
    kinds: dict[str, str]
    columns: dict[str, list[Any]]

    @property
    def rows(self) -> list[dict[str, Any]]:
        count = len(next(iter(self.columns.values())))
        return [{name: values[i] for name, values in self.columns.items()} for i in range(count)]

    def series(self, name: str) -> pd.Series:
        return pd.Series(self.columns[name], dtype=PANDAS_TYPES[self.kinds[name]])


@st.composite
def datasets(draw: st.DrawFn, csv: bool = False) -> Data:
    names = draw(st.lists(CSV_NAMES if csv else NAMES, min_size=1, max_size=4, unique_by=lambda name: name.casefold()))
    row_count = draw(st.integers(1 if csv else 0, 12))
    kinds, columns = {}, {}
    for name in names:
        kind = draw(st.sampled_from(KINDS))
        values = CSV_TEXTS if csv and kind == "text" else VALUES[kind]
        pool = draw(st.lists(values, min_size=1, max_size=3))  # repeats, for top_values
        cell = st.one_of(st.none(), st.sampled_from(pool), values)
        column = draw(st.lists(cell, min_size=row_count, max_size=row_count))
        if csv and kind in ("int", "float") and all(value is None for value in column):
            column[draw(st.integers(0, row_count - 1))] = draw(values)
        kinds[name], columns[name] = kind, column
    return Data(kinds, columns)


#: Always tried first: case and accents against collations, overflow of int64 sums, ±1e300.
EDGES = Data(
    kinds={"t": "text", "i": "int", "f": "float", "b": "bool"},
    columns={
        "t": ["a", "B", "é", "Z", None, "a", "e\u0301", "a😀", "b"],
        "i": [2**63 - 1, 2**63 - 1, -(2**63), None, 7, 7, 2**62, -1, 0],
        "f": [1e300, -1e300, 1.0, None, 1.0, -0.0, 0.0, 5e-324, 1e-300],
        "b": [True, None, False, True, True, None, False, True, True],
    },
)


def probes_for(data: Data) -> list[str]:
    probes = ["record_count", "column_count"]
    for name, kind in data.kinds.items():
        stats = COLUMN_STATS if kind in ("int", "float") else ORDINARY_STATS
        probes += [f"{stat}:{name}" for stat in stats]
    return probes


# -- the pandas reference -------------------------------------------------------------------------


def plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def expected(data: Data, probe: Probe) -> Any:
    if probe.stat == "record_count":
        return len(data.rows)
    if probe.stat == "column_count":
        return len(data.columns)
    assert probe.column is not None
    series, kind = data.series(probe.column), data.kinds[probe.column]
    present = series.dropna()
    match probe.stat:
        case "min":
            return plain(series.min())
        case "max":
            return plain(series.max())
        case "count":
            return int(series.count())
        case "null_count":
            return int(series.isna().sum())
        case "distinct_count":
            return int(series.nunique())
        case "avg":
            return plain(series.mean())
        case "sum":
            if kind == "int":  # pandas' int64 sum wraps around past 2**63; the probe is exact
                return sum(int(value) for value in present) if len(present) else None
            return plain(series.sum(min_count=1))
        case "stddev":
            deviation = plain(series.std())
            if len(present) >= 2 and not (deviation is not None and math.isfinite(deviation)):
                deviation = statistics.stdev(float(value) for value in present)  # pandas overflowed
            return deviation
        case "top_values":
            counts = present.value_counts()
            pairs = sorted(((plain(value), int(count)) for value, count in counts.items()), key=lambda p: (-p[1], p[0]))
            return [[value, count] for value, count in pairs[:10]]
    raise AssertionError(probe)


def check(data: Data, results: dict[str, Any], probes: list[str]) -> None:
    assert list(results) == probes
    for text in probes:
        probe = parse_probe(text)
        got, want = results[text], expected(data, probe)
        where = f"{text}: got {got!r}, pandas {want!r}"
        if want is None or got is None:
            assert got is None and want is None, where
            continue
        kind = data.kinds.get(probe.column or "")
        if (probe.stat == "sum" and kind == "float") or probe.stat == "avg":
            magnitudes = [abs(float(value)) for value in data.series(str(probe.column)).dropna()]
            bound = 4 * len(magnitudes) * EPS * math.fsum(magnitudes)
            if probe.stat == "avg":
                bound = bound / len(magnitudes) + EPS * abs(want)
            assert isinstance(got, float) and abs(got - want) <= bound, where
        elif probe.stat == "stddev":
            magnitudes = [abs(float(value)) for value in data.series(str(probe.column)).dropna()]
            bound = 1e-12 * abs(want) + 16 * len(magnitudes) * EPS * max(magnitudes)
            assert isinstance(got, float) and abs(got - want) <= bound, where
        else:
            assert got == want, where
            assert type(got) is type(want) or (isinstance(want, int) and isinstance(got, int)), where
            if probe.stat == "top_values":
                assert all(type(g) is type(w) for (g, _), (w, _) in zip(got, want, strict=True)), where


def check_refusals(data: Data, compute: Any) -> None:
    """avg/sum/stddev of text and booleans are refused, naming the column."""
    for name, kind in data.kinds.items():
        if kind in ("text", "bool"):
            with pytest.raises(InvalidInput) as caught:
                compute([f"{NUMERIC_STATS[len(name) % 3]}:{name}"])
            assert caught.value.field == "probes" and repr(name) in caught.value.message


# -- engines --------------------------------------------------------------------------------------

_names = (f"t{i}_{uuid.uuid4().hex[:6]}" for i in itertools.count())


def load(engine: sa.Engine, data: Data) -> sa.Table:
    """A new table holding ``data``; its text columns sort case-insensitively where the engine can.

    The probes must follow code points whatever the collation: SQLite and DuckDB columns are
    declared ``COLLATE NOCASE``, the PostgreSQL database has an ICU (natural language) locale.
    """
    nocase = "NOCASE" if engine.dialect.name in ("sqlite", "duckdb") else None

    def column_type(kind: str) -> sa.types.TypeEngine[Any]:
        return sa.Text(collation=nocase) if kind == "text" else SQL_TYPES[kind]()

    metadata = sa.MetaData()
    columns = [sa.Column(name, column_type(kind)) for name, kind in data.kinds.items()]
    table = sa.Table(next(_names), metadata, *columns)
    metadata.create_all(engine)
    if data.rows:
        with engine.begin() as connection:
            connection.execute(table.insert(), data.rows)
    return table


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'probes.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def duckdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"duckdb:///{tmp_path_factory.mktemp('duckdb') / 'probes.duckdb'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(postgres: TemporaryPostgres, postgres_admin: sa.Engine) -> Iterator[sa.Engine]:
    name = f"probes_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        try:  # natural-language order (a < B < é < z), unlike code points: COLLATE "C" must be there
            connection.execute(
                sa.text(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
            )
        except sa.exc.DBAPIError:  # a server without ICU (or before PostgreSQL 15)
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(postgres.url(name))
    yield engine
    engine.dispose()
    with postgres_admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))


ENGINES = ["sqlite_engine", "duckdb_engine", pytest.param("postgres_engine", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_sql_probes_agree_with_pandas(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)

    @SETTINGS
    @given(datasets())
    @example(EDGES)
    def run(data: Data) -> None:
        table = load(engine, data)
        try:
            source = sql_source(engine, table=table.name)
            probes = probes_for(data)
            check(data, compute_sql(engine, source, probes), probes)
            check_refusals(data, lambda probes: compute_sql(engine, source, probes))
        finally:
            table.drop(engine)

    run()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_file_probes_agree_with_pandas(fmt: str) -> None:
    @SETTINGS
    @given(datasets(csv=fmt == "csv"))
    @example(EDGES)
    def run(data: Data) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"data.{fmt}"
            if fmt == "parquet":
                schema = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in data.kinds.items()])
                pq.write_table(pa.table(data.columns, schema=schema), path)
            else:
                frame = pd.DataFrame({name: data.series(name) for name in data.kinds})
                frame.to_csv(path, index=False)
            probes = probes_for(data)
            results = compute_files(str(path), fmt, [*probes, "size_bytes"])  # type: ignore[arg-type]
            assert results.pop("size_bytes") == os.path.getsize(path)
            check(data, results, probes)
            check_refusals(data, lambda probes: compute_files(path.as_uri(), fmt, probes))  # type: ignore[arg-type]

    run()


# -- the vocabulary -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "median:a", "min", "min:", "top_values", "record_count:a", "record_count:", "MIN:a", " min:a", "size"],
)
def test_invalid_probe_ids_are_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_probe(text)
    assert caught.value.field == "probes" and repr(text) in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        parse_probes(["record_count", text])
    assert caught.value.field == "probes"


def test_probe_lists_must_be_lists() -> None:
    for value in ("record_count", None, 3):
        with pytest.raises(InvalidInput) as caught:
            parse_probes(value)  # type: ignore[arg-type]
        assert caught.value.field == "probes"


@given(st.sampled_from([*TABLE_STATS, *COLUMN_STATS]), NAMES)
@settings(max_examples=50, derandomize=True, database=None)
def test_probe_ids_round_trip(stat: str, column: str) -> None:
    probe = Probe(stat, None if stat in TABLE_STATS else column)
    assert parse_probe(probe.id) == probe
    assert parse_probes([probe.id, probe.id]) == [probe]


# -- refusals, statements, sources ----------------------------------------------------------------

FIXED = Data(
    kinds={"n": "int", "x y": "float", 'we"ird:': "text", "flag": "bool"},
    columns={
        "n": [1, 2, None, 2, 5],
        "x y": [0.5, None, -1.25, 3.0, 3.0],
        'we"ird:': ["B", "a", None, "😀", "a"],
        "flag": [True, None, False, True, True],
    },
)


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_unknown_columns_and_sizes_are_refused(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    table = load(engine, FIXED)
    try:
        source = sql_source(engine, table=table.name)
        for probes, named in [
            (["min:nope"], "'nope'"),
            (["record_count", "top_values:N"], "'N'"),
            (["size_bytes"], "size_bytes"),
            (["avg:flag"], "'flag'"),
            (['sum:we"ird:'], "'we\"ird:'"),
        ]:
            with pytest.raises(InvalidInput) as caught:
                compute_sql(engine, source, probes)
            assert caught.value.field == "probes" and named in caught.value.message
    finally:
        table.drop(engine)


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_one_aggregate_statement_for_all_probes(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    table = load(engine, FIXED)
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        source = sql_source(engine, table=table.name)  # reflection happens here, before counting
        aggregates = [p for p in probes_for(FIXED) if not p.startswith("top_values:")]
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            results = compute_sql(engine, source, aggregates)
            assert len(statements) == 1, statements
            assert statements[0].lstrip().upper().startswith("SELECT")
            statements.clear()
            both = compute_sql(engine, source, [*aggregates, "top_values:n", 'top_values:we"ird:'])
            assert len(statements) == 3, statements  # one GROUP BY per top_values column
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        check(FIXED, results, aggregates)
        assert both['top_values:we"ird:'] == [["a", 2], ["B", 1], ["😀", 1]]
        assert both["top_values:n"] == [[2, 2], [1, 1], [5, 1]]
    finally:
        table.drop(engine)


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_sources_bare_tables_and_queries(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    table = load(engine, FIXED)
    try:
        probes = probes_for(FIXED)
        direct = compute_sql(engine, sql_source(engine, table=table.name), probes)
        check(FIXED, direct, probes)
        assert compute_sql(engine, sa.table(table.name), probes) == direct  # reflected on the fly
        preparer = engine.dialect.identifier_preparer
        query = f"SELECT * FROM {preparer.quote(table.name)} WHERE 1 = 1;"
        assert compute_sql(engine, sql_source(engine, query=query), probes) == direct
        declared = sa.text(
            f"SELECT {preparer.quote('x y')} * 2 AS doubled, '\\:x' AS s FROM {preparer.quote(table.name)}"
        )
        typed = declared.columns(doubled=sa.Double, s=sa.Text).subquery("q")
        assert compute_sql(engine, typed, ["sum:doubled", "max:s", "column_count"]) == {
            "sum:doubled": 10.5,
            "max:s": ":x",
            "column_count": 2,
        }
        with pytest.raises(InvalidInput) as caught:
            sql_source(engine, table="no_such_table")
        assert caught.value.field == "table"
    finally:
        table.drop(engine)


def test_files_on_an_fsspec_filesystem_with_a_glob() -> None:
    memory = fsspec.filesystem("memory")
    folder = f"memory://probes-{uuid.uuid4().hex[:8]}"
    try:
        schema = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in FIXED.kinds.items()])
        for part in ("a", "b"):
            with memory.open(f"{folder}/{part}.parquet", "wb") as handle:
                pq.write_table(pa.table(FIXED.columns, schema=schema), handle)
        memory.pipe(f"{folder}/notes.txt", b"not data")
        results = compute_files(f"{folder}/*.parquet", "parquet", ["record_count", "size_bytes", "max:x y"])
        sizes = sum(memory.size(f"{folder}/{part}.parquet") for part in ("a", "b"))
        assert results == {"record_count": 10, "size_bytes": sizes, "max:x y": 3.0}
        with pytest.raises(InvalidInput) as caught:
            compute_files(f"{folder}/*.csv", "csv", ["record_count"])
        assert caught.value.field == "url"
    finally:
        memory.rm(folder, recursive=True)


def test_csv_type_sniffing_caveat(tmp_path: Path) -> None:
    """CSV carries no types: a numeric column without any value reads as text, and says so."""
    path = tmp_path / "sparse.csv"
    path.write_text("n,x\n1,\n2,\n")
    assert compute_files(str(path), "csv", ["sum:n", "count:x", "min:x"]) == {"sum:n": 3, "count:x": 0, "min:x": None}
    with pytest.raises(InvalidInput) as caught:
        compute_files(str(path), "csv", ["avg:x"])
    assert caught.value.field == "probes" and "'x' is text" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        compute_files(str(path), "json", ["record_count"])  # type: ignore[arg-type]
    assert caught.value.field == "fmt"
