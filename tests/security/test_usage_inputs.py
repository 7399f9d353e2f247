"""Class 15 (usage and budget inputs): what the usage totals, their export and the budgets accept.

An ordinary account and an administrator send ``GET /usage/totals`` and ``/usage/export`` every
malformed, extreme or hostile ``since``, ``until``, ``by``, ``user`` and ``format`` they can think
of; the administrator sends budgets with hostile subjects and amounts and hostile budget ids. Each
variant is a refusal naming its field (400, or 403/404 for another person's usage), or an answer
over a window of at most 366 days; never a 500, never a budget the store did not mean to hold.
"""

import itertools
import json
import math
from datetime import datetime

import pytest
import requests

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "15 usage inputs"

INSTANTS = [
    "2026-03-01",
    "2026-03-01T00:00:00",
    "2026-03-01T00:00:00Z",
    "2026-03-01T00:00:00+14:00",
    "2026-03-01T00:00:00-12:00",
    "0001-01-01",
    "0001-01-01T00:00:00+01:00",
    "1999-12-31T23:59:59Z",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-05:00",
    "2026-02-30",
    "2026-13-01",
    "2026-03-01T25:00:00",
    "2026-03-01T00:00:00+25:00",
    "\u0662\u0660\u0662\u0666-\u0660\u0663-\u0660\u0661",
    "\uff12\uff10\uff12\uff16-03-01",
    "1700000000",
    "-1",
    "99999999999999999999",
    "now",
    "yesterday",
    "2026-03-01' OR '1'='1",
    "\x00",
    "",
    "x" * 5000,
]

HOSTILE_TEXT = [
    "",
    "'",
    "' OR '1'='1",
    "reader' --",
    "reader; DROP TABLE tier_usage",
    "%",
    "_",
    "*",
    "READER",
    "reader\x00admin",
    "\u202eredaer",
    "\uff52\uff45\uff41\uff44\uff45\uff52",
    "x" * 101,
    "x" * 5000,
]

#: A window the answer must stay within.
MAX_DAYS = 366


def _within_bounds(body: dict[str, str]) -> bool:
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    return 0 < (until - since).total_seconds() <= MAX_DAYS * 86400


@pytest.mark.parametrize("role", ["contributor", "admin"])
@pytest.mark.parametrize("endpoint", ["/usage/totals", "/usage/export"])
def test_every_usage_query_is_a_named_refusal_or_a_bounded_answer(
    api: LiveAPI, ledger: Ledger, endpoint: str, role: str
) -> None:
    variants: list[dict[str, str]] = [{name: value} for name, value in itertools.product(("since", "until"), INSTANTS)]
    variants += [{"since": "2026-01-01", "until": until} for until in ("2027-01-02", "2026-01-01", "2025-12-31")]
    variants += [{"user": value} for value in HOSTILE_TEXT]
    if endpoint == "/usage/totals":
        variants += [{"by": value} for value in ["tier", "users", "TIER", "month,tier", "cost", *HOSTILE_TEXT]]
    else:
        variants += [{"format": value} for value in ["csv", "CSV", "xlsx", "json", "../csv", *HOSTILE_TEXT]]
    for params in variants:
        response = api.request("GET", endpoint, role=role, params=params)
        status = response.status_code
        assert status in {200, 400, 403, 404}, (endpoint, params, status, response.text)
        if status != 200:
            field = response.json()["field"]
            assert field in params, (endpoint, params, response.json())
            assert status == 400 or field == "user", (endpoint, params, response.json())
        elif endpoint == "/usage/totals":
            assert _within_bounds(response.json()), (params, response.json())
        else:
            assert response.text.startswith("month,tier,user,project,hours,cost,currency"), params
        ledger.tried(ATTACK, (endpoint, role, tuple(params.items())), status != 200)


AMOUNTS: list[object] = [
    0,
    -1,
    -0.0,
    1e12 + 1,
    1e300,
    "1e309",
    math.inf,
    -math.inf,
    "NaN",
    "500",
    "",
    None,
    True,
    [],
    {},
]
SUBJECTS: list[dict[str, object]] = [
    {},
    {"project": "ALPHA", "group": "readers"},
    {"project": None, "group": None},
    {"project": "alpha"},
    {"project": "ALPHA' OR '1'='1"},
    {"project": "A" * 41},
    {"project": "\uff21\uff2c\uff30\uff28\uff21"},
    {"project": "NOPE"},
    {"project": 7},
    {"project": ["ALPHA"]},
    {"group": "readers; DROP TABLE budgets"},
    {"group": "nobody-here"},
    {"group": "x" * 5000},
    {"group": "readers\x00"},
]


def post_raw(api: LiveAPI, method: str, path: str, body: dict[str, object]) -> requests.Response:
    """Sent as Python's json writes it: NaN and the infinities as bare words, which strict clients refuse to send."""
    headers = {"Content-Type": "application/json"}
    return api.request(method, path, role="admin", data=json.dumps(body), headers=headers)


def test_hostile_budgets_are_refused_naming_their_field_and_never_stored(api: LiveAPI, ledger: Ledger) -> None:
    bodies: list[dict[str, object]] = [{"project": "ALPHA", "amount": amount} for amount in AMOUNTS]
    bodies += [{**subject, "amount": 10} for subject in SUBJECTS]
    bodies += [{"project": "ALPHA", "amount": 10, "spent": 0}, {"project": "ALPHA", "amount": 10, "id": 1}]
    for body in bodies:
        response = post_raw(api, "POST", "/budgets", body)
        refused = response.status_code == 400
        assert refused, (body, response.status_code, response.text)
        field = response.json()["field"]
        assert field in {*body, "body"} or field.split(".")[0] in body, (body, response.json())
        ledger.tried(ATTACK, ("POST /budgets", repr(body)), refused)
    assert api.request("GET", "/budgets", role="admin").json() == []

    made = api.request("POST", "/budgets", role="admin", json={"project": "ALPHA", "amount": 10}).json()
    for amount in AMOUNTS:
        response = post_raw(api, "PATCH", f"/budgets/{made['id']}", {"amount": amount})
        refused = response.status_code == 400 and response.json()["field"] == "amount"
        assert refused, (amount, response.status_code, response.text)
        ledger.tried(ATTACK, ("PATCH /budgets amount", repr(amount)), refused)
    assert api.request("GET", f"/budgets/{made['id']}", role="admin").json()["amount"] == 10


BUDGET_IDS = ["0", "-1", "1.0", "1e3", "0x1", "٣", "¹", " 1", "9" * 19, "1 OR 1=1", "%2e%2e", "..", "*"]


def test_a_hostile_budget_id_is_a_404(api: LiveAPI, ledger: Ledger) -> None:
    for budget_id, (method, body) in itertools.product(
        BUDGET_IDS, [("GET", None), ("PATCH", {"amount": 1}), ("DELETE", None)]
    ):
        response = api.request(method, f"/budgets/{budget_id}", role="admin", json=body)
        refused = response.status_code == 404
        assert refused, (method, budget_id, response.status_code, response.text)
        ledger.tried(ATTACK, (method, budget_id), refused)
