"""Class 16 (audit filters): every filter of ``GET /audit`` and ``/audit/export``, hostile.

The audit page sends what a person types: a hostile actor, action, object or project is matched
literally (LIKE's ``%`` and ``_`` match only themselves, a quote is a character), too long a value
is a 400 naming its field, and so is a time that is no time, out of range once in UTC (year 1
east of Greenwich, year 9999 west of it), or an ``until`` not after ``since``; never a 500. The
export answers the same refusals before sending a byte, and someone without view_audit gets the
same 403 whatever they ask, learning nothing about the trail.
"""

import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.identity import CreateGroup

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "16 audit filters"

HOSTILE_TEXT = [
    "%",
    "_",
    "%%",
    "project%",
    "proj_ct",
    "project.%",
    "'",
    "' OR '1'='1",
    "admin'; DROP TABLE audit_entries; --",
    '"',
    "\\",
    "*",
    "..",
    "\u202eetaerc.tcejorp",
    "\uff50\uff52\uff4f\uff4a\uff45\uff43\uff54",
    "<script>alert(1)</script>",
    "project.create\n",
    " project.create",
]

#: field -> values too long for it (the columns' own sizes).
TOO_LONG = {"actor": 101, "action": 61, "project": 41, "object_type": 41, "object_id": 201}

BAD_TIMES = [
    "yesterday",
    "2026-13-01",
    "2026-02-30T00:00:00",
    "2026-12-02T25:00:00",
    "2026-12-02T10:00:00+25:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:00:00-05:00",
    "1e400",
    "-1",
    "2026",
    "1764669600",
    "٢٠٢٦-١٢-٠٢",
    "x" * 5000,
]


@pytest.fixture
def marked_trail(plane: ControlPlane) -> None:
    """Entries whose action and object would match the wildcards if they were wildcards."""
    operator = Caller.operator("test-setup", client_address="test")
    plane.users.create_group(operator, CreateGroup(name="project_x", description="not a project action"))


def test_hostile_text_is_matched_literally(api: LiveAPI, ledger: Ledger, marked_trail: None) -> None:
    every = api.request("GET", "/audit", params={"limit": 500}).json()["items"]
    for field in ("actor", "action", "project", "object_type", "object_id"):
        for value in HOSTILE_TEXT:
            response = api.request("GET", "/audit", params={field: value, "limit": 500})
            assert response.status_code == 200, (field, value, response.text)
            column = "project_key" if field == "project" else field
            wanted = value.strip()  # as Tornado reads every query argument
            matching = [
                e for e in every if e[column] == wanted or (field == "action" and e[column].startswith(wanted + "."))
            ]
            got = response.json()["items"]
            assert ledger.tried(ATTACK, (field, value), got == matching), (field, value, got)


def test_too_long_values_are_refused_naming_their_field(api: LiveAPI, ledger: Ledger) -> None:
    for path in ("/audit", "/audit/export"):
        for field, length in TOO_LONG.items():
            response = api.request("GET", path, params={field: "x" * length})
            assert response.status_code == 400, (path, field, response.text)
            assert ledger.tried(ATTACK, (path, field, length), response.json()["field"] == field)


def test_bad_times_are_refused_naming_since_or_until(api: LiveAPI, ledger: Ledger) -> None:
    for path in ("/audit", "/audit/export"):
        for field in ("since", "until"):
            for value in BAD_TIMES:
                response = api.request("GET", path, params={field: value})
                assert response.status_code == 400, (path, field, value, response.text)
                assert ledger.tried(ATTACK, (path, field, value), response.json()["field"] == field), response.text


def test_until_must_be_after_since(api: LiveAPI, ledger: Ledger) -> None:
    for since, until in [
        ("2026-12-02T10:00:00Z", "2026-12-02T10:00:00Z"),
        ("2026-12-02T10:00:00Z", "2026-12-02T09:59:59Z"),
        ("2026-12-02T10:00:00+01:00", "2026-12-02T09:00:00Z"),  # the same instant
    ]:
        for path in ("/audit", "/audit/export"):
            response = api.request("GET", path, params={"since": since, "until": until})
            assert response.status_code == 400, (since, until, response.text)
            assert ledger.tried(ATTACK, (path, since, until), response.json()["field"] == "until")


def test_who_may_not_read_the_trail_learns_nothing(api: LiveAPI, ledger: Ledger) -> None:
    for role in ("nogrant", "reader", "contributor", "projadmin"):
        answers = set()
        for path, params in [
            ("/audit", {"actor": "admin"}),
            ("/audit", {"actor": "nobody-at-all"}),
            ("/audit", {"since": "2026-12-02T10:00:00+01:00"}),
            ("/audit/export", {"action": "project"}),
            ("/audit/facets", {}),
            ("/audit/verify", {}),
        ]:
            response = api.request("GET", path, role, params=params)
            ledger.tried(ATTACK, (role, path, tuple(params.items())), response.status_code == 403)
            assert response.status_code == 403, (role, path, params, response.text)
            answers.add(response.json()["message"])
        assert len(answers) == 1, (role, answers)
