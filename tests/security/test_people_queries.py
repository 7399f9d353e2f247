"""Class 17 (people queries): what the people listing, the deactivation preview and a person's
tokens accept, and whom they tell about.

An administrator sends ``GET /users`` every hostile ``search``, ``kind``, ``active``, ``limit``
and ``offset`` (injections, LIKE wildcards, NUL, unpaired surrogates, homoglyphs, huge values),
``GET /users/{login}/deactivation`` and ``GET /tokens?user=`` hostile logins. Each variant is a
400 naming its field, a 404, or an ordinary answer within the page cap in which every person
found really contains the search text (a wildcard never widens it); never a 500, never a token's
value. Anyone but an administrator gets the same 403 for every variant, naming nobody.
"""

import itertools
import re
from urllib.parse import quote

from ..conftest import TARGET_EMAIL, LiveAPI
from .conftest import Ledger

ATTACK = "17 people queries"

HOSTILE_TEXT = [
    "",
    " ",
    "'",
    "' OR '1'='1",
    "target' --",
    "target; DROP TABLE users",
    '"; SELECT * FROM api_tokens; --',
    "%",
    "%%",
    "_",
    "t_rget",
    "tar%",
    "\\",
    "\\%",
    "[a-z]*",
    "*",
    "..",
    "../admin",
    "\x00",
    "target\x00admin",
    "\x1b[31m",
    "\u202etegrat",
    "\uff54\uff41\uff52\uff47\uff45\uff54",
    "TARGET",
    "x" * 100,
    "x" * 101,
    "x" * 5000,
    "hml_",
]

KINDS = ["user", "service", "USER", "admin", "operator", "system", "", "user,service", "x" * 5000]
BOOLEANS = ["true", "false", "1", "0", "yes", "no", "on", "TRUE", "perhaps", "", "null", "x" * 5000]
NUMBERS = ["0", "-1", "1", "500", "501", "99999999999999999999", "1.5", "1e3", "٣", "¹", "0x10", ""]

#: What an answer may hold at most: the API's page cap.
MAX_PAGE = 500
#: Tornado drops these from query arguments before the API reads them.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
#: Not UTF-8 (an unpaired surrogate, an overlong NUL, a lone continuation byte), percent-encoded.
UNDECODABLE = ["%ED%A0%80", "%C0%80", "%80", "target%ED%A0%80"]


def _found_contains(items: list[dict[str, str]], search: str) -> bool:
    needle = search.lower()
    return all(needle in " ".join((u["login"], u["display_name"], u["email"])).lower() for u in items)


def test_every_listing_input_is_a_named_refusal_or_a_literal_bounded_answer(api: LiveAPI, ledger: Ledger) -> None:
    variants = [("search", value) for value in HOSTILE_TEXT]
    variants += [("kind", value) for value in KINDS]
    variants += [("active", value) for value in BOOLEANS]
    variants += [(name, value) for name, value in itertools.product(("limit", "offset"), NUMBERS)]
    for name, value in variants:
        response = api.request("GET", "/users", params={name: value})
        assert response.status_code in {200, 400}, (name, value, response.status_code, response.text)
        if response.status_code == 400:
            assert response.json()["field"] == name, (name, value, response.json())
        else:
            items = response.json()["items"]
            assert len(items) <= MAX_PAGE
            if name == "search":
                assert _found_contains(items, _CONTROL.sub("", value)), (value, [u["login"] for u in items])
        ledger.tried(ATTACK, ("users", name, value), response.status_code == 400)
    for raw in UNDECODABLE:
        response = api.request("GET", f"/users?search={raw}")
        # Tornado's own refusal, before the API reads it: it names the parameter in its sentence.
        assert response.status_code == 400 and "search" in response.json()["message"], (raw, response.text)
        ledger.tried(ATTACK, ("users", "search", raw), True)


def test_a_wildcard_or_an_injection_finds_no_one_it_does_not_contain(api: LiveAPI, ledger: Ledger) -> None:
    for search in ("%", "_", "' OR '1'='1", "tar%", "t_rget", "\\"):
        logins = [u["login"] for u in api.request("GET", "/users", params={"search": search}).json()["items"]]
        assert logins == [], (search, logins)
        ledger.tried(ATTACK, ("literal search", search), True)


def test_hostile_logins_are_refused_or_unknown_and_never_reveal_a_token(api: LiveAPI, ledger: Ledger) -> None:
    target_token = api.world.tokens["reader"]
    asked = [(f"/users/{quote(login, safe='')}/deactivation", {}) for login in HOSTILE_TEXT if login]
    asked += [(f"/users/{raw}/deactivation", {}) for raw in UNDECODABLE]
    asked += [("/tokens", {"user": login}) for login in HOSTILE_TEXT]
    for path, query in asked:
        response = api.request("GET", path, params=query)
        assert response.status_code in {200, 400, 404}, (path, query, response.status_code, response.text)
        assert target_token not in response.text
        ledger.tried(ATTACK, (path, query.get("user")), response.status_code != 200)


def test_anyone_but_an_administrator_learns_nothing(api: LiveAPI, ledger: Ledger) -> None:
    for role, login in itertools.product(("nogrant", "reader", "contributor", "projadmin"), ("target", "nobody")):
        answers = [
            api.request("GET", f"/users/{login}/deactivation", role=role),
            api.request("GET", "/users", role=role, params={"search": login}),
            api.request("GET", "/tokens", role=role, params={"user": login}),
        ]
        for response in answers:
            assert response.status_code == 403, (role, login, response.request.url, response.text)
            assert login not in response.json()["message"] and TARGET_EMAIL not in response.text
            ledger.tried(ATTACK, (role, login, response.request.url), True)
