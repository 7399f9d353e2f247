"""How checks judge values: every boundary of hard and soft bounds, sets, freshness, schema, custom code."""

from datetime import UTC, datetime, timedelta

import pytest

from himalia.core.units import parse_duration
from himalia.data.rules import MetricReading, Outcome, evaluate, metric_label, worst
from himalia.wire.data import CheckSpec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BOUNDS = {"min": 10_000, "soft_min": 12_000, "soft_max": 50_000, "max": 60_000}


def judge(kind: str, value: object, params: dict, metric: str | None = "record_count", **reading: object):  # type: ignore[no-untyped-def]
    computed_at = reading.pop("computed_at", NOW if value is not None else None)
    history = reading.pop("history", [])
    return evaluate(
        kind,
        metric,
        params,
        MetricReading(value, computed_at, history),
        columns=reading.pop("columns", None),
        now=NOW,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("value", "outcome", "message"),
    [
        (9_812, Outcome.ERROR, "record count 9 812 is below the minimum 10 000"),
        (10_000, Outcome.WARNING, "record count 10 000 is below the soft minimum 12 000"),  # min is inclusive
        (11_999.5, Outcome.WARNING, "record count 11999.5 is below the soft minimum 12 000"),
        (12_000, Outcome.OK, "record count 12 000 is within bounds"),  # soft_min is inclusive
        (50_000, Outcome.OK, "record count 50 000 is within bounds"),
        (50_001, Outcome.WARNING, "record count 50 001 is above the soft maximum 50 000"),
        (60_000, Outcome.WARNING, "record count 60 000 is above the soft maximum 50 000"),
        (60_001, Outcome.ERROR, "record count 60 001 is above the maximum 60 000"),
        (None, Outcome.EMPTY, "record count has no value"),
        ("many", Outcome.ERROR, "record count is 'many', not a number"),
        (True, Outcome.ERROR, "record count is True, not a number"),
    ],
)
def test_range_bounds(value: object, outcome: Outcome, message: str) -> None:
    judged = judge("range", value, BOUNDS)
    assert (judged.outcome, judged.message) == (outcome, message)


def test_range_with_one_bound_and_float_formatting() -> None:
    judged = judge("range", 0.041, {"soft_min": 0.05}, metric="avg:fraud_rate")
    assert (judged.outcome, judged.message) == (
        Outcome.WARNING,
        "average of fraud_rate 0.041 is below the soft minimum 0.05",
    )
    assert judge("range", 525.0, {"min": 525, "max": 650}, metric="avg:card_fico_score").outcome == Outcome.OK


@pytest.mark.parametrize(
    ("value", "params", "outcome"),
    [
        (13, {"values": [13]}, Outcome.OK),
        (12, {"values": [13]}, Outcome.ERROR),
        (12, {"values": [13], "severity": "warning"}, Outcome.WARNING),
        ("CA", {"values": ["CA", "NY"]}, Outcome.OK),
        (None, {"values": [13]}, Outcome.EMPTY),
    ],
)
def test_in_set(value: object, params: dict, outcome: Outcome) -> None:  # type: ignore[type-arg]
    assert judge("in_set", value, params, metric="column_count").outcome == outcome


def test_in_set_message_names_the_allowed_values() -> None:
    assert judge("in_set", 12, {"values": [13]}, metric="column_count").message == "column count 12 is not one of 13"


def test_freshness() -> None:
    fresh = judge("freshness", 5, {"max_age": "36h"}, computed_at=NOW - timedelta(hours=35))
    stale = judge("freshness", 5, {"max_age": "36h"}, computed_at=NOW - timedelta(days=3))
    assert fresh.outcome == Outcome.OK
    assert (stale.outcome, stale.message) == (Outcome.ERROR, "last record count is 3 days old (maximum 36h)")
    assert judge("freshness", None, {"max_age": "1d"}).outcome == Outcome.EMPTY
    assert parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_schema_unchanged() -> None:
    expected = [{"name": "id", "type": "INTEGER"}, {"name": "amount", "type": "FLOAT"}]
    same = judge("schema_unchanged", None, {"expected": expected}, metric=None, columns=expected)
    assert same.outcome == Outcome.OK
    changed = judge(
        "schema_unchanged",
        None,
        {"expected": expected, "severity": "warning"},
        metric=None,
        columns=[{"name": "id", "type": "TEXT"}, {"name": "country", "type": "TEXT"}],
    )
    assert changed.outcome == Outcome.WARNING
    assert changed.message == "schema changed: added country (TEXT); removed amount; id: INTEGER -> TEXT"
    assert judge("schema_unchanged", None, {"expected": expected}, metric=None).outcome == Outcome.EMPTY


@pytest.mark.parametrize(
    ("code", "outcome", "message"),
    [
        ("def check(value, history):\n    return 'OK'", Outcome.OK, "custom check: OK"),
        (
            "def check(value, history):\n    return ('WARNING', f'{value} vs {history}')",
            Outcome.WARNING,
            "7 vs [5, 6]",
        ),
        (
            "def check(value, history):\n    print('noise')\n    return value / 0",
            Outcome.ERROR,
            "the check failed: ZeroDivisionError: division by zero (line 3)",
        ),
        (
            "def check(value, history):\n    return 'FINE'",
            Outcome.ERROR,
            "the check returned 'FINE', not one of OK, WARNING, ERROR, EMPTY",
        ),
        ("x = 1", Outcome.ERROR, "the check failed: NameError: the code defines no function check()"),
        ("def check(:", Outcome.ERROR, "the check failed: SyntaxError"),
        (
            "import os\ndef check(value, history):\n    os._exit(3)",
            Outcome.ERROR,
            "the check failed: The code's process failed",
        ),
    ],
)
def test_custom_python_never_crashes(code: str, outcome: Outcome, message: str) -> None:
    judged = judge("custom_python", 7, {"code": code}, history=[5, 6])
    assert judged.outcome == outcome
    assert judged.message.startswith(message)


def test_custom_python_timeout() -> None:
    judged = judge("custom_python", 1, {"code": "def check(v, h):\n    while True: pass", "timeout": 1})
    assert (judged.outcome, judged.message) == (
        Outcome.ERROR,
        "the check failed: TimeoutError: the code ran longer than 1 s",
    )


def test_worst_and_labels() -> None:
    assert worst([Outcome.OK, Outcome.WARNING, Outcome.EMPTY]) == Outcome.WARNING
    assert worst([Outcome.OK, Outcome.ERROR]) == Outcome.ERROR
    assert metric_label("distinct_count:merchant_id") == "distinct count of merchant_id"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "c", "type": "range", "metric": "record_count"}, "at least one of min"),
        ({"name": "c", "type": "range", "metric": "record_count", "min": 5, "max": 1}, "'min' is above 'max'"),
        ({"name": "c", "type": "range", "metric": "x", "min": 5, "soft_min": 1}, "'min' is above 'soft_min'"),
        ({"name": "c", "type": "in_set", "metric": "x"}, "needs 'values'"),
        ({"name": "c", "type": "freshness", "metric": "x", "max_age": "later"}, "max_age"),
        ({"name": "c", "type": "custom_python"}, "needs 'code'"),
    ],
)
def test_invalid_specs_are_refused(spec: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        CheckSpec.model_validate(spec)


def test_nan_is_not_within_any_bounds_and_true_is_not_one() -> None:
    judged = judge("range", float("nan"), {"min": 0, "max": 10}, metric="avg:x")
    assert (judged.outcome, judged.message) == (Outcome.ERROR, "average of x is nan, not a number")
    assert judge("in_set", 1, {"values": [True]}, metric="flag").outcome == Outcome.ERROR
    assert judge("in_set", True, {"values": [True]}, metric="flag").outcome == Outcome.OK
    assert judge("in_set", 13.0, {"values": [13]}, metric="column_count").outcome == Outcome.OK


# -- checks on a metric's history ----------------------------------------------------------------

PERCENT = CheckSpec(name="c", type="change", metric="record_count", change="percent", min=-20, soft_min=-5, max=50)


@pytest.mark.parametrize(
    ("value", "history", "outcome", "message"),
    [
        (
            1000,
            [1000],
            Outcome.OK,
            "the change of record count 0% is within bounds (1 000 -> 1 000, against the previous value)",
        ),
        (960, [900, 1000], Outcome.OK, "the change of record count -4% is within bounds"),
        (950, [1000], Outcome.OK, "-5% is within bounds"),  # soft_min is inclusive
        (940, [1000], Outcome.WARNING, "the change of record count -6% is below the soft minimum -5"),
        (799, [1000], Outcome.ERROR, "the change of record count -20.1% is below the minimum -20"),
        (1501, [1000], Outcome.ERROR, "+50.1% is above the maximum 50"),
        (
            -50,
            [-100],
            Outcome.OK,
            "+50% is within bounds",
        ),  # percent of the reference's size: -100 -> -50 is up by half
        (None, [1000], Outcome.EMPTY, "record count has no value"),
        (1000, [], Outcome.EMPTY, "record count has no previous value to compare with"),
        (1000, [None], Outcome.EMPTY, "no previous value"),
        (0, [0], Outcome.OK, "0% is within bounds"),
        (5, [0], Outcome.ERROR, "record count went from 0 to 5: no percent change from 0"),
        ("many", [1000], Outcome.ERROR, "record count 'many' against 1 000: not numbers"),
    ],
)
def test_change_in_percent(value: object, history: list[object], outcome: Outcome, message: str) -> None:
    judged = judge("change", value, PERCENT.params(), history=history)
    assert judged.outcome == outcome and message in judged.message, judged.message
    if outcome in (Outcome.OK, Outcome.WARNING) or "minimum" in message or "maximum" in message:
        reference = history[-1]
        assert isinstance(reference, int)
        step = abs(reference) / 100  # bounds in percent of the reference's size, placed around it
        assert judged.value["band"] == {
            "min": reference - 20 * step,
            "soft_min": reference - 5 * step,
            "max": reference + 50 * step,
        }


def test_change_absolute_and_n_computations_back() -> None:
    params = CheckSpec(name="c", type="change", metric="m", change="absolute", max=10, compare_to=3).params()
    history = [100, 500, 500]  # compare_to 3: against 100, whatever came since
    judged = judge("change", 111, params, history=history)
    assert judged.outcome == Outcome.ERROR
    assert judged.message == (
        "the change of record count +11 is above the maximum 10 (100 -> 111, against the value 3 computations before)"
    )
    assert judged.value == {"value": 111, "reference": 100, "change": 11, "unit": None, "band": {"max": 110}}
    assert judge("change", 110, params, history=history).outcome == Outcome.OK
    assert judge("change", 110, params, history=history[1:]).outcome == Outcome.EMPTY  # only 2 back


STEADY = [100, 102, 98, 101, 99, 100, 103, 97]  # mean 100, sample standard deviation 2


@pytest.mark.parametrize(
    ("value", "outcome"),
    [(100, Outcome.OK), (105.9, Outcome.OK), (106.1, Outcome.ERROR), (94, Outcome.OK), (93.9, Outcome.ERROR)],
)
def test_anomaly_against_mean_and_standard_deviation(value: float, outcome: Outcome) -> None:
    params = CheckSpec(name="a", type="anomaly", metric="record_count", min_history=5).params()
    judged = judge("anomaly", value, params, history=STEADY)
    assert judged.outcome == outcome, judged.message
    assert judged.value["center"] == 100 and judged.value["width"] == pytest.approx(2)
    assert judged.value["band"] == pytest.approx({"min": 94, "max": 106})
    if outcome == Outcome.ERROR:
        assert judged.message.startswith(f"record count {value} is outside 94 to 106, the mean 100 ± 3 standard")
        assert judged.message.endswith("of the last 8 values")


def test_anomaly_soft_band_window_and_minimum_history() -> None:
    params = CheckSpec(name="a", type="anomaly", metric="m", k=3, soft_k=2, window=8, min_history=6).params()
    assert judge("anomaly", 105, params, history=STEADY).outcome == Outcome.WARNING  # beyond 2 widths, within 3
    assert judge("anomaly", 103, params, history=STEADY).outcome == Outcome.OK
    # Only the last 8 are read, and values that are not numbers do not count.
    assert judge("anomaly", 100, params, history=[10_000, *STEADY]).value["center"] == 100
    few = judge("anomaly", 100, params, history=[100, None, "x", 101, 99, 100, 98])
    assert few.outcome == Outcome.EMPTY
    assert few.message == "record count: 5 past values, fewer than the 6 the anomaly check needs to judge"


def test_the_robust_band_is_not_widened_by_past_outliers() -> None:
    """One past outlier widens mean ± 3 sd until a second one passes; median ± 3 scaled MAD holds."""
    history = [*STEADY, 400]
    mean = CheckSpec(name="a", type="anomaly", metric="m").params()
    robust = CheckSpec(name="a", type="anomaly", metric="m", method="mad").params()
    assert judge("anomaly", 300, mean, history=history).outcome == Outcome.OK
    judged = judge("anomaly", 300, robust, history=history)
    assert judged.outcome == Outcome.ERROR and "the median 100 ± 3 scaled median absolute deviations" in judged.message
    assert judge("anomaly", 104, robust, history=history).outcome == Outcome.OK
    constant = judge("anomaly", 100.5, robust, history=[100] * 6)  # no spread: any change is outside
    assert constant.outcome == Outcome.ERROR and constant.value["band"] == {"min": 100, "max": 100}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "change", "metric": "m", "change": "percent"}, "needs at least one of min, max"),
        ({"type": "change", "metric": "m", "min": 1}, "a change check needs 'change'"),
        ({"type": "change", "change": "percent", "min": 1}, "a change check needs 'metric'"),
        ({"type": "change", "metric": "m", "change": "percent", "min": 5, "max": 1}, "'min' is above 'max'"),
        ({"type": "change", "metric": "m", "change": "percent", "min": 1, "compare_to": 0}, "compare_to"),
        ({"type": "anomaly"}, "an anomaly check needs 'metric'"),
        ({"type": "anomaly", "metric": "m", "soft_k": 3}, "'soft_k' is not below 'k'"),
        ({"type": "anomaly", "metric": "m", "window": 4}, "'min_history' is above 'window'"),
        ({"type": "anomaly", "metric": "m", "min": 4}, "'min' goes with a range or change check"),
        ({"type": "anomaly", "metric": "m", "k": 0}, "k"),
        ({"type": "anomaly", "metric": "m", "window": 5000}, "window"),
        ({"type": "range", "metric": "m", "min": 1, "window": 5}, "'window' goes with an anomaly check"),
        ({"type": "range", "metric": "m", "min": 1, "change": "percent"}, "'change' goes with a change check"),
    ],
)
def test_history_check_definitions_are_refused_by_name(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CheckSpec(name="c", **spec)  # type: ignore[arg-type]


def test_a_change_is_written_once_whatever_digits_the_metric_holds() -> None:
    params = CheckSpec(name="c", type="change", metric="avg:col2", change="percent", max=1).params()
    judged = judge("change", 102, params, metric="avg:col2", history=[100])
    assert judged.message == (
        "the change of average of col2 +2% is above the maximum 1 (100 -> 102, against the previous value)"
    )
