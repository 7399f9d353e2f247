"""Class 13 (access queries): what the access grid and the access explanation accept, and tell.

An administrator's grid takes ``subjects``, ``project``, ``search``, ``limit`` and ``offset``;
every malformed, extreme or hostile value is a 400 naming its field or an ordinary page within
the bounds (never a 500, never more rows than the limit, a search never a pattern). A project
administrator, who may ask why someone holds a permission on their project, tries every name
they can think of to learn who exists or who the administrators are: every person holding no
grant on the project is the same 404 as nobody at all, and no answer names the administrators.
"""

import re

import pytest

from ..conftest import TARGET_EMAIL, LiveAPI
from .conftest import Ledger

ATTACK = "13 access queries"

HOSTILE_TEXT = [
    "",
    " ",
    "'",
    "' OR '1'='1",
    "admin' --",
    "x; DROP TABLE project_grants",
    '"; SELECT * FROM users; --',
    "%",
    "_",
    "%%",
    "a%",
    "\\",
    "\\%",
    "*",
    "..",
    "\x00",
    "adm\x00in",
    "\u202enimda",
    "\uff41\uff44\uff4d\uff49\uff4e",
    "ADMIN",
    "x" * 200,
    "x" * 201,
    "x" * 5000,
    "\U0001d51e\U0001d521\U0001d52a",
]
SUBJECTS = ["users", "groups", "USERS", "user", "tokens", "users,groups", "", " users", "x" * 5000, "\x00"]
LIMITS = ["-1", "0", "1", "500", "501", "1e3", "0x10", "9" * 40, "1.5", "", "NaN", "\u0665"]
OFFSETS = ["-1", "0", "5", "10000000", "10000001", "9" * 40, "1.5", "", "\u0665"]
PROJECTS = [*HOSTILE_TEXT, "ALPHA", "NOPE", "alpha", "ALPHA%", "A", "A" * 40, "A" * 41, "ALPHA BETA"]


def grid_query(api: LiveAPI, **params: str) -> tuple[int, dict]:
    response = api.request("GET", "/auth-matrix/grid", params=params)
    return response.status_code, response.json()


@pytest.mark.parametrize("name", ["subjects", "limit", "offset", "project", "search"])
def test_grid_inputs_are_refused_naming_their_field_or_answered_within_bounds(
    api: LiveAPI, ledger: Ledger, name: str
) -> None:
    values = {"subjects": SUBJECTS, "limit": LIMITS, "offset": OFFSETS, "project": PROJECTS, "search": HOSTILE_TEXT}
    for value in values[name]:
        status, body = grid_query(api, **{name: value})
        assert status in {200, 400, 404}, (name, value, status, body)
        if status != 200:
            assert body["field"] == name, (name, value, body)
            ledger.tried(ATTACK, (name, value), refused=True)
            continue
        ledger.tried(ATTACK, (name, value), refused=False)
        assert len(body["subjects"]) <= body["limit"] <= 500
        if name == "search" and value.strip("%_\\*") != value:
            # wildcards are characters: no login holds them
            assert body["subjects"] == [] or all(value in s["name"] for s in body["subjects"])
        if name == "project" and value not in ("", "ALPHA"):
            raise AssertionError(f"project {value!r} answered: {body['projects']}")


def test_the_grid_is_refused_to_project_administrators_whatever_they_ask(api: LiveAPI, ledger: Ledger) -> None:
    for params in [{}, {"subjects": "groups"}, {"project": "ALPHA"}, {"search": "admin"}, {"limit": "500"}]:
        response = api.request("GET", "/auth-matrix/grid", role="projadmin", params=params)
        assert ledger.tried(ATTACK, ("projadmin grid", params), refused=response.status_code == 403), response.text
        assert "target" not in response.text and TARGET_EMAIL not in response.text


def test_a_project_administrator_cannot_enumerate_people_through_explanations(api: LiveAPI, ledger: Ledger) -> None:
    absent = set()
    for login in ["nogrant", "admin", "target", "nobody", "ADMIN", "admin ", "admin%", "a_min", "%", "_"]:
        params = {"user": login, "project": "ALPHA", "permission": "read_content"}
        response = api.request("GET", "/auth-matrix/explain", role="projadmin", params=params)
        refused = response.status_code in {400, 404}
        assert ledger.tried(ATTACK, ("explain", login), refused=refused), (login, response.text)
        if response.status_code == 404:
            absent.add(re.sub("'[^']*'", "'X'", response.json()["message"], count=1))
        assert TARGET_EMAIL not in response.text
    assert len(absent) == 1, absent
    for login in ["reader", "contributor", "projadmin"]:  # they hold grants on ALPHA
        params = {"user": login, "project": "ALPHA", "permission": "admin"}
        answer = api.request("GET", "/auth-matrix/explain", role="projadmin", params=params).json()
        assert ledger.tried(ATTACK, ("explain holder", login), refused=answer["administrators"] == [])
        assert "admin" not in answer["project_administrators"]
