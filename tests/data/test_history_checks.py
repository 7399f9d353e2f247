"""Checks that learn from a metric's history, end to end on SQLite, DuckDB, PostgreSQL and Parquet:
the record count computed in the source run after run, ``change`` against the previous value and
``anomaly`` against the band of the past ones, EMPTY until there is history, ERROR when the rows
fall away, the band they used kept with the result for the chart."""

from datetime import timedelta
from pathlib import Path

import pytest

from ..conftest import LiveAPI
from .test_freshness import ALPHA, EACH_SOURCE, events_dataset, run_checks

#: Record counts run after run: steady, then most rows gone.
COUNTS = [20, 21, 19, 20, 21, 20, 4]


@pytest.fixture
def backend() -> str:
    """The store's backend is not what these tests are about: the sources are."""
    return "sqlite"


@EACH_SOURCE
def test_change_and_anomaly_follow_the_record_count(
    api: LiveAPI, tmp_path: Path, request: pytest.FixtureRequest, source: str
) -> None:
    _, write = events_dataset(api, tmp_path, request, source)
    checks = [
        {
            "name": "Steady",
            "type": "change",
            "metric": "record_count",
            "change": "percent",
            "min": -30,
            "soft_min": -10,
        },
        {"name": "Usual", "type": "anomaly", "metric": "record_count", "method": "mad", "min_history": 4, "window": 10},
    ]
    for check in checks:
        saved = api.request("POST", f"{ALPHA}/datasets/events/checks", role="contributor", json=check)
        assert saved.status_code == 201, saved.text

    outcomes = []
    for count in COUNTS:
        write([timedelta(minutes=minute) for minute in range(count)])
        results = run_checks(api, "events")
        outcomes.append((results["Steady"]["outcome"], results["Usual"]["outcome"]))
    assert outcomes == [
        ("EMPTY", "EMPTY"),  # nothing before the first count
        ("OK", "EMPTY"),  # +5%
        ("OK", "EMPTY"),  # -9.5%: within the soft minimum -10
        ("OK", "EMPTY"),  # three past values: fewer than min_history 4
        ("OK", "OK"),
        ("OK", "OK"),
        ("ERROR", "ERROR"),  # 20 -> 4: -80%, and far outside the band of 20s
    ]
    change, anomaly = results["Steady"], results["Usual"]
    assert change["message"] == (
        "the change of record count -80% is below the minimum -30 (20 -> 4, against the previous value)"
    )
    assert change["value"]["band"] == {"min": 14, "soft_min": 18}
    assert anomaly["value"]["history"] == 6 and anomaly["value"]["center"] == 20
    band = anomaly["value"]["band"]
    assert band["min"] < 19 and band["max"] > 21 and not band["min"] <= 4 <= band["max"]
    described = {c["name"]: c for c in api.request("GET", f"{ALPHA}/datasets/events/checks", role="reader").json()}
    assert described["Usual"]["method"] == "mad" and described["Usual"]["k"] == 3
    assert described["Usual"]["last_result"]["value"]["band"] == band  # what the chart draws


def test_a_bad_history_check_is_a_400_naming_its_field(api: LiveAPI) -> None:
    for check, field in [
        ({"name": "x", "type": "anomaly", "metric": "record_count", "window": 1}, "window"),
        ({"name": "x", "type": "change", "metric": "record_count", "change": "ratio", "min": 1}, "change"),
    ]:
        refused = api.request("POST", f"{ALPHA}/datasets/transactions/checks", role="contributor", json=check)
        assert refused.status_code == 400 and field in refused.json()["message"], refused.text
