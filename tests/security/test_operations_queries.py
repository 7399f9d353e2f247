"""Class 11 (operations inputs): what the morning check's queries and a dataset's freshness accept.

An ordinary account sends ``GET /runs`` and ``GET /board`` every malformed, extreme or hostile
``since``, ``state``, ``limit``, ``offset``, ``project``, ``scenario`` and ``trigger`` it can think
of, and declares datasets fresh by columns that are injections, unknown or absurd. Each variant
is a 400 naming its field, or an ordinary answer within the bounds (never a 500, never more than
the 90 days and the page size the API promises); every freshness column that is not one of the
table's columns is refused naming ``freshness.column``, and the warehouse is untouched.
"""

import itertools
import sqlite3
from pathlib import Path

import pytest

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "11 operations inputs"

HOSTILE_TEXT = [
    "",
    " ",
    "'",
    "' OR '1'='1",
    "ALPHA' --",
    "ALPHA; DROP TABLE scenario_runs",
    '"; SELECT * FROM connections; --',
    "%",
    "_",
    "*",
    "..",
    "../ALPHA",
    "\x00",
    "ALPHA\x00BETA",
    "\u202eAHPLA",
    "\uff21\uff2c\uff30\uff28\uff21",
    "alpha",
    "x" * 41,
    "x" * 5000,
    "\U0001d538\U0001d543\u2119\u210d\U0001d538",
]

SINCE = [
    "24h",
    "7d",
    "90d",
    "91d",
    "2160h",
    "2161h",
    "0h",
    "-1h",
    "-24h",
    "1e9d",
    "99999999999999999999d",
    "24",
    "h",
    "24 h",
    "24H",
    "²⁴h",
    "٢٤h",
    "1w",
    "P1D",
    "0001-01-01",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59+14:00",
    "2026-02-30T00:00:00",
    "2026-12-01T25:00:00",
    "2026-12-01T00:00:00+25:00",
    "1970-01-01T00:00:00Z",
    "now",
    "yesterday",
    "x" * 5000,
]

STATES = [
    "succeeded",
    "failed,succeeded",
    "SUCCEEDED",
    "succeeded,,failed",
    ",",
    "running' OR 1=1 --",
    ",".join(["failed"] * 11),
    ",".join(["queued", "running", "succeeded", "warning", "failed", "aborted"]),
    "x" * 5000,
]

NUMBERS = ["0", "-1", "1", "500", "501", "1001", "99999999999999999999", "1.5", "1e3", "٣", "¹", "0x10", " 1", ""]

#: What an answer may hold at most: the API's page cap.
MAX_PAGE = 500


def _answered_within_bounds(response_json: object) -> bool:
    return isinstance(response_json, dict) and len(response_json.get("items", [])) <= MAX_PAGE


@pytest.mark.parametrize("endpoint", ["/runs", "/board"])
def test_every_query_input_is_a_named_refusal_or_a_bounded_answer(api: LiveAPI, ledger: Ledger, endpoint: str) -> None:
    variants: list[tuple[str, str]] = [("since", value) for value in SINCE]
    variants += [(name, value) for name, value in itertools.product(("project", "scenario"), HOSTILE_TEXT)]
    if endpoint == "/runs":
        variants += [("state", value) for value in STATES]
        variants += [("trigger", value) for value in HOSTILE_TEXT]
        variants += [(name, value) for name, value in itertools.product(("limit", "offset"), NUMBERS)]
    for name, value in variants:
        response = api.request("GET", endpoint, role="contributor", params={name: value})
        assert response.status_code in {200, 400}, (endpoint, name, value, response.status_code, response.text)
        if response.status_code == 400:
            assert name in response.json()["field"], (endpoint, name, value, response.json())
        else:
            body = response.json()
            assert endpoint == "/board" or _answered_within_bounds(body), (endpoint, name, value)
        ledger.tried(ATTACK, (endpoint, name, value), response.status_code == 400)


HOSTILE_COLUMNS = [
    'amount"; DROP TABLE transactions_2018; --',
    "amount) FROM transactions_2018; DROP TABLE merchants; --",
    "amount, (SELECT sqlite_version())",
    "max(amount)",
    "*",
    "transactions_2018.amount",
    "`amount`",
    "[amount]",
    '"amount"',
    "AMOUNT ",
    " amount",
    "amount\x00",
    "\uff41\uff4d\uff4f\uff55\uff4e\uff54",
    "",
    "x" * 300,
    "sqlite_master",
    "rowid",
    "nonexistent",
]


def test_a_freshness_column_is_one_of_the_tables_columns_or_refused(api: LiveAPI, ledger: Ledger) -> None:
    warehouse = Path(str(api.plane.home)).with_name(f"{Path(str(api.plane.home)).name}-warehouse.sqlite")
    with sqlite3.connect(warehouse) as sql:
        tables_before = sorted(row[0] for row in sql.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    for index, column in enumerate(HOSTILE_COLUMNS):
        body = {
            "name": f"fresh_{index}",
            "connection": "wh",
            "table": "transactions_2018",
            "freshness": {"column": column, "max_age": "26h"},
        }
        response = api.request("POST", "/projects/ALPHA/datasets", role="contributor", json=body)
        refused = response.status_code == 400
        assert refused, (column, response.status_code, response.text)
        assert response.json()["field"].startswith("freshness"), (column, response.json())
        ledger.tried(ATTACK, ("freshness.column", column), refused)
    with sqlite3.connect(warehouse) as sql:
        tables_after = sorted(row[0] for row in sql.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    assert tables_after == tables_before
