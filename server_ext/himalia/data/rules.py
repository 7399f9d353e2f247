"""Check rules: pure judgements of metric values as OK, WARNING, ERROR or EMPTY (no store, no service).

Semantics (Dataiku's hard and soft bounds):

* ``range``: a value below ``min`` or above ``max`` is an ERROR; otherwise a value below
  ``soft_min`` or above ``soft_max`` is a WARNING; otherwise OK. Every bound is optional and
  inclusive: a value equal to a bound is within it.
* ``in_set``: OK when the value is one of ``values``, else ``severity`` (ERROR by default).
* ``freshness`` without a metric judges the data: the age of the newest value the dataset's
  declared freshness names (``freshness.newest``), at the time of the check. Older than the
  declaration's ``max_age``: ``severity``; else older than ``warn_after``: WARNING; else OK; no
  value (no row, only nulls): EMPTY. A dataset that declares no freshness makes it an ERROR.
* ``freshness`` with a metric (as before the data's own freshness existed) judges how long ago
  that metric was last computed, against the check's ``max_age`` and ``warn_after`` alike.
* ``schema_unchanged``: OK when the dataset's columns (names and types, in order) equal the
  ones recorded when the check was created, else ``severity``, naming what changed.
* ``change``: the value's change against the value ``compare_to`` computations before it, in
  ``percent`` of that value or ``absolute``, judged by ``min``/``max`` (ERROR) and
  ``soft_min``/``soft_max`` (WARNING) as ``range`` judges a value. No value then: EMPTY; a percent
  change from 0 is an ERROR unless the value is 0 too.
* ``anomaly``: the value against a band around its last ``window`` values (the values before it
  that are numbers): mean ± ``k`` sample standard deviations (``stddev``), or median ± ``k`` times
  1.4826 times the median absolute deviation (``mad``: as wide as the standard deviation for normal
  data, but not widened by the outliers it is there to catch). Outside: ERROR; outside the
  ``soft_k`` band: WARNING; fewer than ``min_history`` past values: EMPTY.
  Both record the band they used in value terms (``band``), which the history chart draws.
* ``custom_python``: ``def check(value, history)`` returns an outcome or ``(outcome, message)``;
  it runs in a child process, and an exception is an ERROR carrying the exception's text.

A check whose metric has no value is EMPTY, never OK.
"""

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from himalia.core.units import parse_duration
from himalia.core.unsafe import run_function


class Outcome(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    ERROR = "ERROR"
    EMPTY = "EMPTY"


#: How bad each outcome is, to combine several into one (a scenario's, a dataset's).
SEVERITY = {Outcome.OK: 0, Outcome.EMPTY: 1, Outcome.WARNING: 2, Outcome.ERROR: 3}


def worst(outcomes: list[Outcome]) -> Outcome:
    return max(outcomes, key=SEVERITY.__getitem__, default=Outcome.EMPTY)


@dataclass(frozen=True)
class Evaluation:
    outcome: Outcome
    message: str
    value: Any = None


@dataclass(frozen=True)
class MetricReading:
    """The last value of a metric and when it was computed (both None when never computed)."""

    value: Any
    computed_at: datetime | None
    history: list[Any]


_STAT_LABELS = {
    "min": "minimum of",
    "max": "maximum of",
    "avg": "average of",
    "sum": "sum of",
    "count": "non-null count of",
    "null_count": "null count of",
    "distinct_count": "distinct count of",
    "stddev": "standard deviation of",
    "top_values": "top values of",
    "invalid_count": "rows breaking",
    "invalid_percent": "percent of rows breaking",
}


def metric_label(metric: str) -> str:
    """``record_count`` -> "record count", ``avg:amount`` -> "average of amount"."""
    stat, _, column = metric.partition(":")
    if column and stat in _STAT_LABELS:
        return f"{_STAT_LABELS[stat]} {column}"
    return metric.replace("_", " ")


def format_value(value: Any) -> str:
    """Numbers as people read them: 9 812, 0.0421, 1.5e+12."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}".replace(",", " ")
    return f"{value:.6g}"


def _format_age(age: timedelta) -> str:
    seconds = age.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds / size
            return f"{count:.1f} {unit}s".replace(".0 ", " ")
    return f"{seconds:.0f} seconds"


def evaluate_range(label: str, value: Any, params: dict[str, Any], shown: str | None = None) -> Evaluation:
    """``shown`` is how the value is written in the message (``format_value`` by default)."""
    if value is None:
        return Evaluation(Outcome.EMPTY, f"{label} has no value", value)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return Evaluation(Outcome.ERROR, f"{label} is {format_value(value)}, not a number", value)
    shown = shown or format_value(value)
    for bound, outcome, word, below in (
        ("min", Outcome.ERROR, "minimum", True),
        ("max", Outcome.ERROR, "maximum", False),
        ("soft_min", Outcome.WARNING, "soft minimum", True),
        ("soft_max", Outcome.WARNING, "soft maximum", False),
    ):
        limit = params.get(bound)
        if limit is not None and (value < limit if below else value > limit):
            side = "below" if below else "above"
            return Evaluation(outcome, f"{label} {shown} is {side} the {word} {format_value(limit)}", value)
    return Evaluation(Outcome.OK, f"{label} {shown} is within bounds", value)


def _same_kind(a: Any, b: Any) -> bool:
    """``True`` is not ``1``; ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


def evaluate_in_set(label: str, value: Any, params: dict[str, Any]) -> Evaluation:
    if value is None:
        return Evaluation(Outcome.EMPTY, f"{label} has no value", value)
    allowed = params.get("values", [])
    if any(_same_kind(value, candidate) and value == candidate for candidate in allowed):
        return Evaluation(Outcome.OK, f"{label} {format_value(value)} is an allowed value", value)
    listed = ", ".join(format_value(v) for v in allowed[:10]) + (", ..." if len(allowed) > 10 else "")
    return Evaluation(_severity(params), f"{label} {format_value(value)} is not one of {listed}", value)


def _judge_age(what: str, age: timedelta, max_age: str, params: dict[str, Any]) -> tuple[Outcome, str]:
    """Beyond ``max_age``: the check's severity; beyond ``warn_after``: WARNING; else OK."""
    if age < timedelta(0):
        return Outcome.OK, f"{what} is {_format_age(-age)} in the future (maximum {max_age})"
    words = f"{what} is {_format_age(age)} old"
    if age > parse_duration(max_age):
        return _severity(params), f"{words} (maximum {max_age})"
    warn_after = params.get("warn_after")
    if warn_after is not None and age > parse_duration(warn_after):
        return Outcome.WARNING, f"{words} (warning after {warn_after}, maximum {max_age})"
    return Outcome.OK, f"{words} (maximum {max_age})"


def evaluate_freshness(label: str, reading: MetricReading, params: dict[str, Any], now: datetime) -> Evaluation:
    """How long ago a metric was last computed (the check names a metric)."""
    if reading.computed_at is None:
        return Evaluation(Outcome.EMPTY, f"{label} has never been computed")
    age, max_age = now - reading.computed_at, params["max_age"]
    value = {
        "computed_at": reading.computed_at.isoformat(),
        "age_seconds": age.total_seconds(),
        "max_age": max_age,
        "value": reading.value,
    }
    outcome, message = _judge_age(f"last {label}", age, max_age, params)
    return Evaluation(outcome, message, value)


def evaluate_data_freshness(
    reading: MetricReading, declared: dict[str, Any] | None, params: dict[str, Any], now: datetime
) -> Evaluation:
    """The age of the data's newest value (``freshness.newest``) against the dataset's declaration."""
    if declared is None:
        return Evaluation(
            Outcome.ERROR,
            "the dataset declares no freshness: declare its column and max_age, or give the check a metric",
        )
    max_age, column = declared["max_age"], declared.get("column")
    what = f"newest {column}" if column else "newest file modification"
    if reading.computed_at is None:
        return Evaluation(Outcome.EMPTY, f"the {what} has never been computed (maximum {max_age})")
    if reading.value is None:
        empty = f"{column} has no value (no row, or only nulls)" if column else "no file has a modification time"
        value = {"newest": None, "age_seconds": None, "max_age": max_age}
        return Evaluation(Outcome.EMPTY, f"{empty} (maximum {max_age})", value)
    newest = datetime.fromisoformat(reading.value)
    age = now - newest
    outcome, message = _judge_age(f"{what} {reading.value}", age, max_age, params)
    return Evaluation(
        outcome, message, {"newest": reading.value, "age_seconds": age.total_seconds(), "max_age": max_age}
    )


#: Scales a median absolute deviation to a standard deviation's width for normal data.
MAD_SCALE = 1.4826


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _band(center: float, params: dict[str, Any], width: float) -> dict[str, float]:
    """Value bounds as ``range`` names them: hard at ``k`` widths from the center, soft at ``soft_k``."""
    band = {"min": center - params["k"] * width, "max": center + params["k"] * width}
    if params.get("soft_k") is not None:
        band |= {"soft_min": center - params["soft_k"] * width, "soft_max": center + params["soft_k"] * width}
    return band


def evaluate_change(label: str, value: Any, history: list[Any], params: dict[str, Any]) -> Evaluation:
    """``history`` holds the values computed before ``value``, oldest first."""
    back = params.get("compare_to", 1)
    ago = "the previous value" if back == 1 else f"the value {back} computations before"
    if value is None:
        return Evaluation(Outcome.EMPTY, f"{label} has no value", value)
    if len(history) < back or history[-back] is None:
        return Evaluation(Outcome.EMPTY, f"{label} has no {ago.removeprefix('the ')} to compare with", value)
    reference = history[-back]
    if not (_number(value) and _number(reference)):
        return Evaluation(
            Outcome.ERROR, f"{label} {format_value(value)} against {format_value(reference)}: not numbers", value
        )
    percent = params["change"] == "percent"
    if percent and reference == 0:
        if value == 0:
            change = 0.0
        else:
            return Evaluation(
                _severity(params),
                f"{label} went from 0 to {format_value(value)}: no percent change from 0",
                {"value": value, "reference": reference},
            )
    else:
        change = (value - reference) / abs(reference) * 100 if percent else value - reference
    unit = "%" if percent else ""
    scale = abs(reference) / 100 if percent else 1.0
    band = {
        bound: reference + limit * scale
        for bound in ("min", "max", "soft_min", "soft_max")
        if (limit := params.get(bound)) is not None
    }
    shown = f"{'+' if change > 0 else ''}{format_value(round(change, 6))}{unit}"
    judged = evaluate_range(f"the change of {label}", change, params, shown)
    message = f"{judged.message} ({format_value(reference)} -> {format_value(value)}, against {ago})"
    return Evaluation(
        judged.outcome,
        message,
        {"value": value, "reference": reference, "change": change, "unit": unit or None, "band": band},
    )


def evaluate_anomaly(label: str, value: Any, history: list[Any], params: dict[str, Any]) -> Evaluation:
    """``history`` holds the values computed before ``value``, oldest first."""
    if value is None:
        return Evaluation(Outcome.EMPTY, f"{label} has no value", value)
    if not _number(value):
        return Evaluation(Outcome.ERROR, f"{label} is {format_value(value)}, not a number", value)
    past = [v for v in history[-params["window"] :] if _number(v)]
    if len(past) < params["min_history"]:
        return Evaluation(
            Outcome.EMPTY,
            f"{label}: {len(past)} past value{'s' if len(past) != 1 else ''}, "
            f"fewer than the {params['min_history']} the anomaly check needs to judge",
            {"value": value, "history": len(past)},
        )
    if params["method"] == "mad":
        center = statistics.median(past)
        width = MAD_SCALE * statistics.median(abs(v - center) for v in past)
        around = f"the median {format_value(center)} ± {format_value(params['k'])} scaled median absolute deviations"
    else:
        center, width = statistics.fmean(past), statistics.stdev(past)
        around = f"the mean {format_value(center)} ± {format_value(params['k'])} standard deviations"
    band = _band(center, params, width)
    recorded = {"value": value, "center": center, "width": width, "history": len(past), "band": band}
    of_last = f"of the last {len(past)} values"
    shown = format_value(value)
    if not band["min"] <= value <= band["max"]:
        span = f"{format_value(band['min'])} to {format_value(band['max'])}"
        return Evaluation(Outcome.ERROR, f"{label} {shown} is outside {span}, {around} {of_last}", recorded)
    if "soft_min" in band and not band["soft_min"] <= value <= band["soft_max"]:
        span = f"{format_value(band['soft_min'])} to {format_value(band['soft_max'])}"
        return Evaluation(
            Outcome.WARNING,
            f"{label} {shown} is outside {span}, {format_value(params['soft_k'])} widths around {format_value(center)} "
            f"{of_last} (the soft band)",
            recorded,
        )
    return Evaluation(Outcome.OK, f"{label} {shown} is within {around} {of_last}", recorded)


def schema_difference(expected: list[dict[str, str]], actual: list[dict[str, str]]) -> list[str]:
    """What changed, in words: added and removed columns, changed types, changed order."""
    before = {c["name"]: c["type"] for c in expected}
    after = {c["name"]: c["type"] for c in actual}
    changes = [f"added {name} ({after[name]})" for name in after if name not in before]
    changes += [f"removed {name}" for name in before if name not in after]
    changes += [f"{n}: {before[n]} -> {after[n]}" for n in before if n in after and before[n] != after[n]]
    if not changes and [c["name"] for c in expected] != [c["name"] for c in actual]:
        changes.append("columns reordered")
    return changes


def evaluate_schema(columns: list[dict[str, str]] | None, params: dict[str, Any]) -> Evaluation:
    if columns is None:
        return Evaluation(Outcome.EMPTY, "the schema has never been read")
    changes = schema_difference(params["expected"], columns)
    if changes:
        return Evaluation(_severity(params), "schema changed: " + "; ".join(changes), len(columns))
    return Evaluation(Outcome.OK, f"schema unchanged ({len(columns)} columns)", len(columns))


def evaluate_custom(reading: MetricReading, params: dict[str, Any]) -> Evaluation:
    ran = run_function(params["code"], "check", [reading.value, reading.history], timeout=params.get("timeout", 60))
    if ran.error is not None:
        return Evaluation(Outcome.ERROR, f"the check failed: {ran.error}", reading.value)
    result = ran.result
    outcome, message = (result[0], str(result[1])) if isinstance(result, list) and len(result) == 2 else (result, "")
    if not isinstance(outcome, str) or outcome not in Outcome.__members__:
        return Evaluation(
            Outcome.ERROR, f"the check returned {outcome!r}, not one of OK, WARNING, ERROR, EMPTY", reading.value
        )
    return Evaluation(Outcome(outcome), message or f"custom check: {outcome}", reading.value)


def _severity(params: dict[str, Any]) -> Outcome:
    return Outcome.WARNING if params.get("severity") == "warning" else Outcome.ERROR


def evaluate(
    kind: str,
    metric: str | None,
    params: dict[str, Any],
    reading: MetricReading,
    *,
    columns: list[dict[str, str]] | None,
    now: datetime,
    freshness: dict[str, Any] | None = None,
) -> Evaluation:
    """Judge one check; never raises for a bad value or bad user code. ``freshness`` is the
    dataset's declared freshness, which a freshness check without a metric judges."""
    label = metric_label(metric or "value")
    if kind == "range":
        return evaluate_range(label, reading.value, params)
    if kind == "in_set":
        return evaluate_in_set(label, reading.value, params)
    if kind == "freshness" and metric is None:
        return evaluate_data_freshness(reading, freshness, params, now)
    if kind == "freshness":
        return evaluate_freshness(label, reading, params, now)
    if kind == "schema_unchanged":
        return evaluate_schema(columns, params)
    if kind == "change":
        return evaluate_change(label, reading.value, reading.history, params)
    if kind == "anomaly":
        return evaluate_anomaly(label, reading.value, reading.history, params)
    return evaluate_custom(reading, params)
