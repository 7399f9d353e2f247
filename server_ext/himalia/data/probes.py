"""Probes: the built-in metrics of a dataset, computed where the data lives.

A probe is a named statistic such as ``record_count`` or ``stddev:price``. Probes are never
computed by loading rows into this process: a SQL dataset's probes run as SQL in its own
database, a file dataset's probes run in DuckDB, which scans the CSV or Parquet file(s) in
place. Only the few numbers that answer the probes travel back.

Why it matters:

* **Pushdown.** The database or DuckDB reads the data at its own speed, next to it, in its own
  memory budget; nothing has to fit in the notebook server's memory, and nothing crosses the
  network but one row of results.
* **One scan.** Every aggregate probe of a request (counts, nulls, min, max, sum, avg,
  distinct counts, standard deviations of any number of columns) is folded into ONE ``SELECT``
  statement, so the engine reads the data once however many probes are asked for. The only
  exception is ``top_values``: a frequency table needs a ``GROUP BY`` of its own, so each
  ``top_values`` column costs one more statement (``SELECT v, count(*) ... GROUP BY v ORDER BY
  count(*) DESC, v LIMIT 10``).

Statements are built with SQLAlchemy Core: identifiers are quoted by the dialect and values are
bound, never formatted into SQL text. Semantics are those of pandas where pandas is exact:

* ``min``/``max``/``distinct_count``/``top_values`` of text follow Python's code-point order and
  equality whatever the column's or database's collation: ``COLLATE "C"`` on PostgreSQL and
  DuckDB, ``COLLATE BINARY`` on SQLite (UTF-8 byte order is code-point order);
* ``sum`` of an integer column is the exact integer (PostgreSQL and DuckDB widen natively; on
  SQLite, whose ``sum()`` raises on 64-bit overflow, the high and low 32-bit halves are summed
  separately and recombined); ``avg`` is that sum divided by the count, in Python;
* ``stddev`` is the sample standard deviation (ddof=1, like ``Series.std()``), ``None`` below two
  values. PostgreSQL and DuckDB compute it natively in the same pass. SQLite has no
  ``stddev_samp``: there it is a two-pass form in the same statement (a one-row derived table
  of each column's mean and largest magnitude, joined to the scan), summing the deviations
  scaled by the largest magnitude so that even values near ±1e300 cannot overflow, and
  correcting for the rounding of the mean. If a native ``stddev_samp`` overflows (PostgreSQL
  raises, DuckDB answers infinity; both happen beyond about ±1e154), the statement is run once
  more in that two-pass form;
* ``sum``/``avg``/``min``/``max`` of no value are ``None`` (SQL semantics; pandas would say 0
  for the sum), ``count`` is the non-null count.

Results are plain JSON values: ``int``, ``float``, ``str``, ``bool``, ``None`` and lists
(decimals become floats, or ints for integer sums; dates and times ISO strings).

Freshness has two probes of its own, both answering an ISO timestamp in UTC (``None`` when there
is no value): ``newest:column``, the ``MAX`` of a timestamp, date or text column, folded into the
same aggregate statement, and ``last_modified``, the newest modification time of a files
dataset's files, read off the one listing that also gives ``size_bytes``. A timestamp without a
time zone is taken as UTC, a date as midnight UTC, text must be ISO 8601 (compared as text by the
engine, so write it in one format and one offset), and anything else is refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import sqlalchemy as sa
from fsspec.core import split_protocol, url_to_fs
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import NullType, TypeEngine

from himalia.core.errors import InvalidInput
from himalia.data.drivers import connected, result_columns, table_columns
from himalia.wire.data import RowCondition

__all__ = [
    "COLUMN_STATS",
    "CONDITION_STATS",
    "FRESHNESS_COLUMN_STATS",
    "FRESHNESS_TABLE_STATS",
    "TABLE_STATS",
    "TOP_VALUES_LIMIT",
    "Probe",
    "compute_files",
    "compute_sql",
    "condition_of",
    "failing_rows_of_files",
    "failing_rows_of_sql",
    "parse_probe",
    "parse_probes",
]

#: Statistics of the whole dataset: ``record_count``, ``column_count``, ``size_bytes``.
TABLE_STATS = ("record_count", "column_count", "size_bytes")
#: Statistics of one column, written ``stat:column``.
COLUMN_STATS = ("min", "max", "avg", "sum", "count", "null_count", "distinct_count", "stddev", "top_values")
#: How many values ``top_values`` returns.
TOP_VALUES_LIMIT = 10
#: Freshness of the whole dataset: ``last_modified``, the newest modification time of a files dataset.
FRESHNESS_TABLE_STATS = ("last_modified",)
#: Freshness of one column: ``newest:column``, its newest value as a UTC timestamp.
FRESHNESS_COLUMN_STATS = ("newest",)
#: Rows that break one of the dataset's row conditions, written ``stat:condition``: how many, and
#: their share of all rows in percent (``None`` for no rows).
CONDITION_STATS = ("invalid_count", "invalid_percent")
#: Statistics that only make sense on numbers.
NUMERIC_STATS = frozenset({"avg", "sum", "stddev"})
#: Statistics only a files dataset has.
FILES_STATS = frozenset({"size_bytes", "last_modified"})
_TABLE_STATS = (*TABLE_STATS, *FRESHNESS_TABLE_STATS)
_COLUMN_STATS = (*COLUMN_STATS, *FRESHNESS_COLUMN_STATS)

FIELD = "probes"


class Kind(enum.Enum):
    """What a column holds, as far as the probes care."""

    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    TEXT = "text"
    TEMPORAL = "temporal"
    OTHER = "other"


NUMERIC_KINDS = frozenset({Kind.INTEGER, Kind.FLOAT, Kind.DECIMAL})


# -- the probe vocabulary -------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One statistic; ``column`` is set exactly for the column statistics, ``condition`` (a row
    condition's name) for the condition statistics."""

    stat: str
    column: str | None = None
    condition: str | None = None

    def __post_init__(self) -> None:
        if self.stat in CONDITION_STATS:
            if self.column is not None or not self.condition:
                raise InvalidInput(
                    f"probe {self.id!r}: {self.stat} names a row condition, as '{self.stat}:<condition>'", field=FIELD
                )
        elif self.condition is not None:
            raise InvalidInput(f"probe {self.id!r}: only {' and '.join(CONDITION_STATS)} name a condition", field=FIELD)
        elif self.stat in _TABLE_STATS:
            if self.column is not None:
                raise InvalidInput(f"probe {self.id!r}: {self.stat} takes no column", field=FIELD)
        elif self.stat in _COLUMN_STATS:
            if not self.column:
                raise InvalidInput(
                    f"probe {self.id!r}: {self.stat} needs a column, as '{self.stat}:<column>'", field=FIELD
                )
        else:
            known = ", ".join(
                [
                    *_TABLE_STATS,
                    *(f"{stat}:<column>" for stat in _COLUMN_STATS),
                    *(f"{stat}:<condition>" for stat in CONDITION_STATS),
                ]
            )
            raise InvalidInput(f"unknown probe {self.id!r}; known probes: {known}", field=FIELD)

    @property
    def id(self) -> str:
        argument = self.column if self.condition is None else self.condition
        return self.stat if argument is None else f"{self.stat}:{argument}"


def parse_probe(text: str) -> Probe:
    """``"record_count"``, ``"stat:column"`` or ``"stat:condition"``; the column or condition is
    everything after the first colon."""
    if not isinstance(text, str):
        raise InvalidInput(f"a probe is a string, not {text!r}", field=FIELD)
    stat, colon, column = text.partition(":")
    if stat in CONDITION_STATS:
        return Probe(stat, condition=column or None)
    if stat in _TABLE_STATS and colon:
        raise InvalidInput(f"probe {text!r}: {stat} takes no column", field=FIELD)
    if stat in _COLUMN_STATS and not column:
        raise InvalidInput(f"probe {text!r}: {stat} needs a column, as '{stat}:<column>'", field=FIELD)
    if stat not in _TABLE_STATS and stat not in _COLUMN_STATS:
        Probe(text)  # raises, naming the probe and listing the known ones
    return Probe(stat, column if colon else None)


def condition_of(metric: str | None) -> str | None:
    """The row condition whose rows a metric counts (``invalid_count:positive`` -> ``positive``), else None."""
    stat, colon, condition = (metric or "").partition(":")
    return condition if colon and stat in CONDITION_STATS and condition else None


def parse_probes(texts: Sequence[str]) -> list[Probe]:
    """Parse a list of probe ids, dropping repeats and keeping the order."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInput("probes must be a list of probe ids", field=FIELD)
    return _dedupe(parse_probe(text) for text in texts)


def _dedupe(probes: Iterable[Probe]) -> list[Probe]:
    return list(dict.fromkeys(probes))


def _as_probes(probes: Sequence[Probe | str]) -> list[Probe]:
    if isinstance(probes, str) or not isinstance(probes, Sequence):
        raise InvalidInput("probes must be a list of probe ids", field=FIELD)
    return _dedupe(probe if isinstance(probe, Probe) else parse_probe(probe) for probe in probes)


# -- column types ---------------------------------------------------------------------------------


def kind_of(type_: TypeEngine[Any]) -> Kind:
    """Classify a SQLAlchemy type (reflected or declared)."""
    if isinstance(type_, NullType):
        return Kind.OTHER
    if isinstance(type_, sa.Boolean):
        return Kind.BOOLEAN
    if isinstance(type_, sa.Integer):
        return Kind.INTEGER
    if isinstance(type_, sa.Float):
        return Kind.FLOAT
    if isinstance(type_, sa.Numeric):
        return Kind.DECIMAL
    if isinstance(type_, sa.Enum):  # ordered by declaration, not text: no collation either
        return Kind.OTHER
    if isinstance(type_, sa.String):
        return Kind.TEXT
    if isinstance(type_, (sa.Date, sa.DateTime, sa.Time, sa.Interval)):
        return Kind.TEMPORAL
    return Kind.OTHER


# -- one aggregate statement ----------------------------------------------------------------------


class _Stddev(enum.Enum):
    """How the statement computes standard deviations."""

    NATIVE = "stddev_samp"  # one pass, in the engine (PostgreSQL, DuckDB, others)
    NUMERIC = "stddev_samp over numeric"  # PostgreSQL after a float8 overflow: exact, slower
    TWO_PASS = "two-pass, scaled"  # SQLite always; other engines after an overflow


@dataclass(frozen=True)
class _Column:
    name: str
    expr: ColumnElement[Any]
    kind: Kind


class _Aggregate:
    """The single aggregate ``SELECT`` of a request, and how to read the probes off its row."""

    def __init__(
        self,
        source: FromClause,
        columns: Mapping[str, _Column],
        dialect: str,
        stddev: _Stddev,
        conditions: Mapping[str, RowCondition] | None = None,
    ) -> None:
        self.source, self.columns, self.dialect, self.stddev = source, columns, dialect, stddev
        self.conditions = conditions or {}
        self.labels: dict[tuple[str, ...], str] = {}
        self.exprs: dict[str, ColumnElement[Any]] = {}
        self.pre: FromClause | None = None

    def need(self, key: tuple[str, ...], make: Callable[[], ColumnElement[Any]]) -> str:
        if key not in self.labels:
            label = f"p{len(self.labels)}"
            self.labels[key] = label
            self.exprs[label] = make()
        return self.labels[key]

    # Expressions -------------------------------------------------------------------------------

    def ordered(self, column: _Column) -> ColumnElement[Any]:
        """The column under the collation that orders and compares text by code point."""
        if column.kind is Kind.TEXT and self.dialect in ("postgresql", "duckdb"):
            return sa.collate(column.expr, "C")
        if column.kind is Kind.TEXT and self.dialect == "sqlite":
            return sa.collate(column.expr, "BINARY")
        return column.expr

    def broken(self, condition: RowCondition) -> ColumnElement[bool]:
        """True for a row that breaks ``condition`` (but ``unique``, which no row shows alone);
        null (not counted) for a null value, but under ``not_null``."""
        column = self.columns[condition.column]
        value = column.expr
        if condition.rule == "not_null":
            return value.is_(None)
        if condition.rule == "range":
            outside: list[ColumnElement[bool]] = []
            if condition.min is not None:
                outside.append(value < _bound(condition.min, column.kind, math.ceil))
            if condition.max is not None:
                outside.append(value > _bound(condition.max, column.kind, math.floor))
            return sa.or_(*outside)
        if condition.rule == "values":
            return self.ordered(column).not_in(_allowed(condition, column.kind))
        assert condition.rule == "pattern" and condition.pattern is not None
        if self.dialect == "duckdb":  # its own RE2, which `~` would anchor at both ends
            return sa.not_(sa.func.regexp_matches(value, condition.pattern, type_=sa.Boolean()))
        return sa.not_(value.regexp_match(condition.pattern))  # SQLite: RE2 too (drivers), PostgreSQL: its own

    def invalid(self, condition: RowCondition) -> Callable[[Mapping[str, Any]], int]:
        """How to read the number of rows that break ``condition`` off the row."""
        column = self.columns[condition.column]
        if condition.rule == "unique":  # every repetition of a value breaks it once
            count = self.count(column)
            distinct = self.distinct(column)
            return lambda row: int(row[count]) - int(row[distinct])
        label = self.need(
            ("invalid", condition.name), lambda: sa.func.sum(sa.case((self.broken(condition), 1), else_=0))
        )
        return lambda row: int(row[label] or 0)

    def distinct(self, column: _Column) -> str:
        return self.need(("distinct", column.name), lambda: sa.func.count(sa.distinct(self.ordered(column))))

    def as_double(self, column: _Column) -> ColumnElement[Any]:
        return sa.cast(column.expr, sa.Double())

    def build_pre(self, stddev_columns: Sequence[_Column]) -> None:
        """The one-row derived table of the two-pass standard deviation: mean and scale per column."""
        if not stddev_columns:
            return
        parts: list[ColumnElement[Any]] = []
        for index, column in enumerate(stddev_columns):
            value = self.as_double(column)
            count: ColumnElement[Any] = sa.cast(sa.func.count(column.expr), sa.Double())
            parts.append((sa.func.sum(value) / _nonzero(count)).label(f"m{index}"))
            parts.append(sa.func.max(sa.func.abs(value)).label(f"s{index}"))
        self.pre = sa.select(*parts).select_from(self.source).subquery("pre")
        self.pre_index = {column.name: index for index, column in enumerate(stddev_columns)}

    def rows(self) -> str:
        return self.need(("rows",), lambda: sa.func.count())

    def count(self, column: _Column) -> str:
        return self.need(("count", column.name), lambda: sa.func.count(column.expr))

    def sum_parts(self, column: _Column) -> tuple[str, ...]:
        if column.kind is Kind.INTEGER and self.dialect == "sqlite":
            # sum() raises on int64 overflow: add the high and low halves apart, recombine exactly
            high = self.need(("sum_high", column.name), lambda: sa.func.sum(column.expr.bitwise_rshift(32)))
            low = self.need(("sum_low", column.name), lambda: sa.func.sum(column.expr.bitwise_and(0xFFFFFFFF)))
            return (high, low, self.count(column))
        if column.kind is Kind.DECIMAL and self.dialect == "sqlite":
            return (self.need(("sum", column.name), lambda: sa.func.total(column.expr, type_=sa.Double())),)
        return (self.need(("sum", column.name), lambda: sa.func.sum(column.expr)),)

    def stddev_parts(self, column: _Column) -> tuple[str, ...]:
        count = self.count(column)
        if self.dialect == "postgresql" and (column.kind is not Kind.FLOAT or self.stddev is _Stddev.NUMERIC):
            # Exact numeric variance; the square root in Python: PostgreSQL's numeric sqrt keeps as
            # few as 11 significant digits. A float8 goes through text: its cast to numeric keeps
            # 15 digits, its text output the shortest exact ones (extra_float_digits >= 1, the default).
            value = column.expr
            if column.kind is Kind.FLOAT:
                value = sa.cast(sa.cast(value, sa.Text()), sa.Numeric())
            variance = self.need(("variance", column.name), lambda: sa.func.var_samp(value, type_=sa.Numeric()))
            return (variance, count, "variance")
        if self.stddev is not _Stddev.TWO_PASS:
            native = self.need(("stddev", column.name), lambda: sa.func.stddev_samp(column.expr, type_=sa.Double()))
            return (native, count, "stddev")
        assert self.pre is not None
        index = self.pre_index[column.name]
        mean, scale = self.pre.c[f"m{index}"], self.pre.c[f"s{index}"]
        scaled = (self.as_double(column) - mean) / _nonzero(scale)
        return (
            count,
            self.need(("std_scale", column.name), lambda: sa.func.max(scale)),
            self.need(("std_sum", column.name), lambda: sa.func.sum(scaled)),
            self.need(("std_sumsq", column.name), lambda: sa.func.sum(scaled * scaled)),
        )

    def plan(self, probe: Probe) -> Callable[[Mapping[str, Any]], Any]:
        """Add what ``probe`` needs to the statement; return how to read its value off the row."""
        if probe.stat == "record_count":
            rows = self.rows()
            return lambda row: int(row[rows])
        if probe.stat in CONDITION_STATS:
            assert probe.condition is not None
            invalid = self.invalid(self.conditions[probe.condition])
            if probe.stat == "invalid_count":
                return invalid
            rows = self.rows()
            return lambda row: 100.0 * invalid(row) / int(row[rows]) if row[rows] else None
        assert probe.column is not None
        column = self.columns[probe.column]
        kind = column.kind
        if probe.stat in ("min", "max"):
            if kind is Kind.BOOLEAN and self.dialect == "postgresql":  # no min(boolean) there
                function = "bool_and" if probe.stat == "min" else "bool_or"
            else:
                function = probe.stat
            label = self.need((probe.stat, column.name), lambda: getattr(sa.func, function)(self.ordered(column)))
            return lambda row: _jsonable(row[label], kind)
        if probe.stat == "count":
            count = self.count(column)
            return lambda row: int(row[count])
        if probe.stat == "null_count":
            rows, count = self.rows(), self.count(column)
            return lambda row: int(row[rows]) - int(row[count])
        if probe.stat == "distinct_count":
            label = self.distinct(column)
            return lambda row: int(row[label])
        if probe.stat == "sum":
            parts = self.sum_parts(column)
            count = self.count(column)
            return lambda row: _sum_value(row, parts, row[count], kind)
        if probe.stat == "avg":
            parts = self.sum_parts(column)
            count = self.count(column)
            return lambda row: _avg_value(_sum_value(row, parts, row[count], kind), row[count])
        if probe.stat == "stddev":
            parts = self.stddev_parts(column)
            return lambda row: _stddev_value(row, parts, self.stddev)
        if probe.stat == "newest":  # the driver's own value (no result processing): its zone, or its text
            label = self.need(
                ("newest", column.name), lambda: sa.type_coerce(sa.func.max(self.ordered(column)), NullType())
            )
            return lambda row: utc_timestamp(row[label], probe)
        raise AssertionError(probe.stat)  # pragma: no cover - top_values and table stats are elsewhere

    def statement(self) -> sa.Select[Any]:
        from_: FromClause = self.source if self.pre is None else self.source.join(self.pre, sa.true())
        return sa.select(*(expr.label(label) for label, expr in self.exprs.items())).select_from(from_)


def _nonzero(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``NULLIF(value, 0.0)`` as a double, so that dividing by it stays in floating point.

    (With an integer literal SQLAlchemy would make the division ``NUMERIC`` on PostgreSQL.)
    """
    return sa.func.nullif(value, sa.literal(0.0, sa.Double()), type_=sa.Double())


def _bound(bound: float, kind: Kind, to_integer: Callable[[float], int]) -> ColumnElement[Any]:
    """A range condition's bound as the column compares it: an integer column against the nearest
    integer inside the range (exact even beyond 2**53), other columns against a double."""
    if kind is Kind.INTEGER:
        return sa.literal(to_integer(bound), sa.BigInteger())
    return sa.literal(bound, sa.Double())


def _allowed(condition: RowCondition, kind: Kind) -> list[Any]:
    """The allowed values a column of ``kind`` can hold (an integer column holds no 2.5)."""
    assert condition.values is not None
    if kind is Kind.INTEGER:
        return [int(value) for value in condition.values if float(value).is_integer()]
    return list(condition.values)


class _NativeStddevOverflow(Exception):
    """A native ``stddev_samp`` answered infinity or NaN: run the statement in the two-pass form."""


def _sum_value(row: Mapping[str, Any], parts: tuple[str, ...], count: Any, kind: Kind) -> Any:
    if not count:
        return None
    if len(parts) == 3:  # SQLite integers: high and low 32-bit halves
        return int(row[parts[0]]) * 2**32 + int(row[parts[1]])
    return _jsonable(row[parts[0]], kind)


def _avg_value(total: Any, count: Any) -> float | None:
    if not count or total is None:
        return None
    return float(total / int(count))  # int / int and Decimal / int round once, correctly


def _stddev_value(row: Mapping[str, Any], parts: tuple[str, ...], mode: _Stddev) -> float | None:
    if len(parts) == 3:  # one native aggregate: a standard deviation, or an exact variance
        native, count = row[parts[0]], row[parts[1]]
        if count is None or int(count) < 2 or native is None:
            return None
        if parts[2] == "variance":
            return float(decimal.Decimal(native).sqrt(decimal.Context(prec=40)))
        value = float(native)
        if mode is _Stddev.NATIVE and not math.isfinite(value):
            raise _NativeStddevOverflow
        return value
    count, scale, total, squares = (row[part] for part in parts)
    n = int(count or 0)
    if n < 2:
        return None
    if not scale:  # every value is zero
        return 0.0
    scale, total, squares = float(scale), float(total or 0.0), float(squares or 0.0)
    # Deviations from the (rounded) mean, scaled into [-2, 2]: the corrected two-pass formula.
    variance = max(squares - total * total / n, 0.0) / (n - 1)
    return scale * math.sqrt(variance)


def _is_overflow(error: DBAPIError) -> bool:
    original = error.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return state == "22003" or "OutOfRange" in type(original).__name__ or "out of range" in str(original).lower()


# -- conversion to JSON ---------------------------------------------------------------------------


def _jsonable(value: Any, kind: Kind = Kind.OTHER) -> Any:
    """A plain JSON value: numbers, strings, booleans, None, lists."""
    if value is None:
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if kind is Kind.BOOLEAN and isinstance(value, int):
        return bool(value)
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return float(value) if kind is Kind.FLOAT else int(value)
    if isinstance(value, float):
        return value
    if isinstance(value, decimal.Decimal):
        if kind is Kind.INTEGER and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return str(value)


def utc_timestamp(value: Any, probe: Probe) -> str | None:
    """An ISO timestamp in UTC: naive timestamps are UTC, dates midnight UTC, text ISO 8601."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"probe {probe.id!r}: the newest value {value[:100]!r} is not an ISO 8601 date or timestamp",
                field=FIELD,
            ) from None
    if isinstance(value, dt.datetime):
        moment = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(), dt.UTC)
    else:
        raise InvalidInput(
            f"probe {probe.id!r}: the newest value {_jsonable(value)!r} is not a date or timestamp", field=FIELD
        )
    return moment.isoformat()


# -- running the probes ---------------------------------------------------------------------------


def _columns_of(source: FromClause) -> dict[str, _Column]:
    return {column.name: _Column(column.name, column, kind_of(column.type)) for column in source.c}


#: What kinds of column each rule of a row condition applies to.
_CONDITION_KINDS = {
    "range": NUMERIC_KINDS,
    "pattern": frozenset({Kind.TEXT}),
    "values": frozenset({*NUMERIC_KINDS, Kind.TEXT, Kind.BOOLEAN}),
    "not_null": frozenset(Kind),
    "unique": frozenset(Kind) - {Kind.OTHER},
}


def _validate_condition(condition: RowCondition, columns: Mapping[str, _Column]) -> None:
    """Refuse a condition its column cannot answer, naming the condition."""
    where = f"condition {condition.name!r}"
    column = columns.get(condition.column)
    if column is None:
        raise InvalidInput(f"{where}: the dataset has no column {condition.column!r}", field="conditions")
    if column.kind not in _CONDITION_KINDS[condition.rule]:
        what = "of unknown type" if column.kind is Kind.OTHER else column.kind.value
        raise InvalidInput(
            f"{where}: column {condition.column!r} is {what}; a {condition.rule} condition needs "
            + ", ".join(sorted(kind.value for kind in _CONDITION_KINDS[condition.rule])),
            field="conditions",
        )
    if condition.rule == "values":
        assert condition.values is not None
        expected: tuple[type, ...] = (
            (int, float) if column.kind in NUMERIC_KINDS else (str,) if column.kind is Kind.TEXT else (bool,)
        )
        wrong = [
            v for v in condition.values if not isinstance(v, expected) or (bool not in expected and isinstance(v, bool))
        ]
        if wrong:
            raise InvalidInput(
                f"{where}: column {condition.column!r} is {column.kind.value}, and {wrong[0]!r} is not",
                field="conditions",
            )


def _validate(
    probes: Sequence[Probe],
    columns: Mapping[str, _Column],
    conditions: Mapping[str, RowCondition],
    *,
    files: bool,
) -> None:
    for probe in probes:
        if probe.condition is not None:
            condition = conditions.get(probe.condition)
            if condition is None:
                raise InvalidInput(
                    f"probe {probe.id!r}: the dataset has no row condition {probe.condition!r}", field=FIELD
                )
            _validate_condition(condition, columns)
            continue
        if probe.stat in FILES_STATS and not files:
            what = "a size" if probe.stat == "size_bytes" else "modification times"
            raise InvalidInput(f"probe {probe.id!r}: only file datasets have {what}", field=FIELD)
        if probe.column is None:
            continue
        column = columns.get(probe.column)
        if column is None:
            raise InvalidInput(f"probe {probe.id!r}: the dataset has no column {probe.column!r}", field=FIELD)
        if probe.stat in NUMERIC_STATS and column.kind not in NUMERIC_KINDS:
            what = "of unknown type" if column.kind is Kind.OTHER else column.kind.value
            raise InvalidInput(f"probe {probe.id!r}: column {probe.column!r} is {what}, not numeric", field=FIELD)
        if probe.stat == "newest" and column.kind in {*NUMERIC_KINDS, Kind.BOOLEAN}:
            raise InvalidInput(
                f"probe {probe.id!r}: column {probe.column!r} is {column.kind.value}, not a timestamp, date or text",
                field=FIELD,
            )


@dataclass(frozen=True)
class _Files:
    """What the listing of a files dataset told: total size and newest modification time (UTC ISO)."""

    size_bytes: int
    last_modified: str | None


def _run(
    connection: Connection,
    source: FromClause,
    probes: Sequence[Probe],
    conditions: Sequence[RowCondition],
    *,
    files: _Files | None = None,
) -> dict[str, Any]:
    columns = _columns_of(source)
    named = {condition.name: condition for condition in conditions}
    _validate(probes, columns, named, files=files is not None)
    dialect = connection.dialect.name
    results: dict[str, Any] = {}
    unscanned = ("column_count", "size_bytes", "last_modified", "top_values")
    aggregate_probes = [p for p in probes if p.stat not in unscanned]
    if aggregate_probes:
        mode = _Stddev.TWO_PASS if dialect == "sqlite" else _Stddev.NATIVE  # SQLite has no stddev_samp
        try:
            results.update(_aggregate(connection, source, columns, named, aggregate_probes, dialect, mode))
        except (DBAPIError, _NativeStddevOverflow) as error:
            has_stddev = any(p.stat == "stddev" for p in aggregate_probes)
            if mode is not _Stddev.NATIVE or not has_stddev:
                raise
            if isinstance(error, DBAPIError) and not _is_overflow(error):
                raise
            connection.rollback()
            fallback = _Stddev.NUMERIC if dialect == "postgresql" else _Stddev.TWO_PASS
            results.update(_aggregate(connection, source, columns, named, aggregate_probes, dialect, fallback))
    for probe in probes:
        if probe.stat == "column_count":
            results[probe.id] = len(columns)
        elif probe.stat in FILES_STATS:
            assert files is not None
            results[probe.id] = files.size_bytes if probe.stat == "size_bytes" else files.last_modified
        elif probe.stat == "top_values":
            assert probe.column is not None
            results[probe.id] = _top_values(connection, source, columns[probe.column], dialect)
    return {probe.id: results[probe.id] for probe in probes}


def _aggregate(
    connection: Connection,
    source: FromClause,
    columns: Mapping[str, _Column],
    conditions: Mapping[str, RowCondition],
    probes: Sequence[Probe],
    dialect: str,
    stddev: _Stddev,
) -> dict[str, Any]:
    aggregate = _Aggregate(source, columns, dialect, stddev, conditions)
    if stddev is _Stddev.TWO_PASS:
        stddev_names = dict.fromkeys(p.column for p in probes if p.stat == "stddev" and p.column is not None)
        aggregate.build_pre([columns[name] for name in stddev_names])
    readers = {probe.id: aggregate.plan(probe) for probe in probes}
    row = dict(connection.execute(aggregate.statement()).mappings().one())
    return {probe_id: read(row) for probe_id, read in readers.items()}


def _top_values(connection: Connection, source: FromClause, column: _Column, dialect: str) -> list[list[Any]]:
    """The most frequent non-null values: one ``GROUP BY`` statement of its own."""
    value = _Aggregate(source, {}, dialect, _Stddev.NATIVE).ordered(column)
    frequency = sa.func.count()
    statement = (
        sa.select(value.label("value"), frequency.label("frequency"))
        .select_from(source)
        .where(column.expr.is_not(None))
        .group_by(value)
        .order_by(frequency.desc(), value.asc())
        .limit(TOP_VALUES_LIMIT)
    )
    return [[_jsonable(row.value, column.kind), int(row.frequency)] for row in connection.execute(statement)]


def _resolve(connection: Connection, source: FromClause) -> FromClause:
    """A bare ``sqlalchemy.table(name)`` (or one with untyped columns) gets its columns reflected."""
    if isinstance(source, TableClause) and (
        not source.c or any(isinstance(column.type, NullType) for column in source.c)
    ):
        return sa.table(source.name, *table_columns(connection, source.name, source.schema), schema=source.schema)
    return source


def compute_sql(
    bind: Engine | Connection,
    source: FromClause,
    probes: Sequence[Probe | str],
    conditions: Sequence[RowCondition] = (),
) -> dict[str, Any]:
    """Compute ``probes`` of ``source`` (a table or a subquery, see ``drivers.sql_source``) in its database.

    One aggregate ``SELECT`` answers every probe but ``column_count`` (from the source's
    columns) and ``top_values`` (one ``GROUP BY`` statement per column). ``size_bytes`` and
    ``last_modified`` are refused: a table has no files. The ``invalid_*`` probes count the rows
    that break the row ``conditions`` they name. Given a connection, it runs on it.
    """
    parsed = _as_probes(probes)
    with connected(bind) as connection:
        return _run(connection, _resolve(connection, source), parsed, conditions)


def failing_rows_of_sql(
    bind: Engine | Connection, source: FromClause, condition: RowCondition, limit: int
) -> dict[str, Any]:
    """At most ``limit`` rows of ``source`` that break ``condition``, in one bounded statement."""
    with connected(bind) as connection:
        return _failing_rows(connection, _resolve(connection, source), condition, limit)


def compute_files(
    url: str | Sequence[str],
    fmt: Literal["csv", "parquet"],
    probes: Sequence[Probe | str],
    storage_options: Mapping[str, Any] | None = None,
    conditions: Sequence[RowCondition] = (),
) -> dict[str, Any]:
    """Compute ``probes`` of CSV or Parquet file(s) with DuckDB scanning them in place.

    ``url`` is a path, a ``file://`` URL or any fsspec URL, globs allowed, or a list of local
    files (the real paths a connection's policy checked, read exactly as given). Non-local
    filesystems are handed to DuckDB through fsspec (built with ``storage_options``), so DuckDB
    reads them directly. CSV files are read with ``read_csv_auto`` (header row, sniffed types:
    a column with no value at all reads as text). ``size_bytes`` is the total size of the
    matched files, ``last_modified`` the newest of their modification times, both from the one
    listing that finds them (never a call per remote file).
    """
    parsed = _as_probes(probes)
    wants_modified = any(p.stat == "last_modified" for p in parsed)
    with _scanned(url, fmt, storage_options, modified=wants_modified) as (connection, source, listing):
        return _run(connection, source, parsed, conditions, files=listing)


def failing_rows_of_files(
    url: str | Sequence[str],
    fmt: Literal["csv", "parquet"],
    condition: RowCondition,
    limit: int,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """At most ``limit`` rows of the files that break ``condition``, scanned by DuckDB in place."""
    with _scanned(url, fmt, storage_options, modified=False) as (connection, source, _):
        return _failing_rows(connection, source, condition, limit)


@contextmanager
def _scanned(
    url: str | Sequence[str],
    fmt: Literal["csv", "parquet"],
    storage_options: Mapping[str, Any] | None,
    *,
    modified: bool,
) -> Iterator[tuple[Connection, FromClause, _Files]]:
    """A DuckDB connection, the typed scan of the files and what their listing told."""
    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"unknown file format {fmt!r}: csv or parquet", field="fmt")
    location: str | list[str]
    if isinstance(url, str):
        filesystem, path = url_to_fs(url, **dict(storage_options or {}))
        found = _file_infos(filesystem, path)
        local = split_protocol(url)[0] in (None, "file", "local")
        location = path if local else url
    else:
        location, local = list(url), True
        found = [{"size": os.path.getsize(path), "mtime": os.path.getmtime(path)} for path in location]
    if not found:
        raise InvalidInput(f"no file matches {url!r}", field="url")
    listing = _Files(
        size_bytes=sum(int(info["size"]) for info in found),
        last_modified=_newest_modification(found) if modified else None,
    )
    reader = "read_parquet(:path)" if fmt == "parquet" else "read_csv_auto(:path, header = true)"
    scan = sa.text(f"SELECT * FROM {reader}").bindparams(path=location)
    engine = sa.create_engine("duckdb:///:memory:", poolclass=StaticPool)
    try:
        with engine.connect() as connection:
            duckdb_connection: Any = connection.connection.driver_connection
            if not local:
                duckdb_connection.register_filesystem(filesystem)
            try:
                columns = result_columns(connection, scan, field="url", what=f"cannot read {url!r} as {fmt}")
                yield connection, scan.columns(*columns).subquery("src"), listing
            finally:
                if not local:  # DuckDB holds the (cached, shared) fsspec instance until told otherwise
                    duckdb_connection.unregister_filesystem(
                        filesystem.protocol[0] if isinstance(filesystem.protocol, tuple) else filesystem.protocol
                    )
    finally:
        engine.dispose()


#: The longest text of one cell in a sample of failing rows; longer values are cut there.
SAMPLE_CELL_CHARACTERS = 200


def _failing_rows(connection: Connection, source: FromClause, condition: RowCondition, limit: int) -> dict[str, Any]:
    columns = _columns_of(source)
    _validate_condition(condition, columns)
    aggregate = _Aggregate(source, columns, connection.dialect.name, _Stddev.NATIVE, {condition.name: condition})
    statement = sa.select(*source.c).select_from(source)
    if condition.rule == "unique":  # the rows of every repeated value, each value's rows together
        column = columns[condition.column]
        value = aggregate.ordered(column)
        repeated = (
            sa.select(value)
            .select_from(source)
            .where(column.expr.is_not(None))
            .group_by(value)
            .having(sa.func.count() > 1)
        )
        statement = statement.where(value.in_(repeated.scalar_subquery())).order_by(value)
    else:
        statement = statement.where(aggregate.broken(condition))
    kinds = [column.kind for column in columns.values()]
    rows = [
        [_sample_cell(cell, kind) for cell, kind in zip(row, kinds, strict=True)]
        for row in connection.execute(statement.limit(limit))
    ]
    return {"condition": condition.name, "columns": list(columns), "rows": rows}


def _sample_cell(value: Any, kind: Kind) -> Any:
    plain = _jsonable(value, kind)
    if isinstance(plain, str) and len(plain) > SAMPLE_CELL_CHARACTERS:
        return plain[: SAMPLE_CELL_CHARACTERS - 1] + "…"
    if isinstance(plain, (list, dict)):
        text = str(plain)
        return text if len(text) <= SAMPLE_CELL_CHARACTERS else text[: SAMPLE_CELL_CHARACTERS - 1] + "…"
    return plain


def _file_infos(filesystem: fsspec.AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    """fsspec's details of every file ``path`` names (a glob, a folder or a file), in one listing."""
    if fsspec.core.has_magic(path):
        found = filesystem.glob(path, detail=True)
        return [info for info in found.values() if info.get("type") == "file"]
    if not filesystem.exists(path):
        return []
    info = filesystem.info(path)
    if info.get("type") == "directory":
        return list(filesystem.find(path, detail=True).values())
    return [info]


#: Where fsspec implementations report a file's modification time: local and SFTP, S3, Azure, GCS, memory.
_MODIFIED_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")


def _newest_modification(found: Sequence[Mapping[str, Any]]) -> str:
    newest: dt.datetime | None = None
    for info in found:
        stamp = next((info[key] for key in _MODIFIED_KEYS if info.get(key) is not None), None)
        if isinstance(stamp, int | float):
            moment = dt.datetime.fromtimestamp(stamp, dt.UTC)
        elif isinstance(stamp, dt.datetime):
            moment = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)
        elif isinstance(stamp, str):
            moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
        else:
            raise InvalidInput(
                "probe 'last_modified': the filesystem reports no modification time of "
                f"{info.get('name', 'a file')!r}; name a timestamp column instead",
                field=FIELD,
            )
        newest = moment if newest is None else max(newest, moment)
    assert newest is not None
    return newest.isoformat()
