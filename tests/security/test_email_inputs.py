"""Class 19 (profile emails): what ``POST /users`` and ``PATCH /users/{login}`` take as ``email``.

A profile email ends up in a mail header (the budget alerts put them all in one ``To``), so a
pasted newline, a header injection, a list, a display name, a comment or a control character is
a 400 naming ``email`` and nothing is stored; one plain address, or none, is taken as typed.
"""

import itertools

from ..conftest import TARGET_EMAIL, LiveAPI
from .conftest import Ledger

ATTACK = "19 profile emails"

HOSTILE = [
    "reader@example.org\n",
    "reader@example.org\r\n",
    "\nreader@example.org",
    "reader@example.org\r\nBcc: everyone@evil.example",
    "reader@example.org\nSubject: hello",
    "reader@example.org%0aBcc:x@evil.example",
    "reader@example.org, other@example.org",
    "reader@example.org;other@example.org",
    "Reader <reader@example.org>",
    "<reader@example.org>",
    "reader(comment)@example.org",
    '"reader"@example.org',
    '"re der"@example.org',
    "re der@example.org",
    " reader@example.org",
    "reader@example.org ",
    "reader@example.org\t",
    "reader\x00@example.org",
    "reader\x1b[31m@example.org",
    "reader\x7f@example.org",
    "reader@example.org\u2028",
    "reader@example.org\u0085",
    "reader\u202e@example.org",
    "reader\u200b@example.org",
    "reader@@example.org",
    "reader@example@org",
    "@example.org",
    "reader@",
    "@",
    "reader",
    "réader@example.org",
    "x" * 310 + "@example.org",
    "=?utf-8?q?reader=0A?=@example.org",
]

PLAIN = ["reader@example.org", "first.last+tag@sub.example.org", "x@[192.0.2.1]", "someone@exämple.org", ""]


def test_a_hostile_email_is_refused_naming_the_field_and_nothing_is_stored(api: LiveAPI, ledger: Ledger) -> None:
    for n, email in enumerate(HOSTILE):
        for method, path, body in (
            ("POST", "/users", {"login": f"hostile{n}", "email": email}),
            ("PATCH", "/users/target", {"email": email}),
        ):
            response = api.request(method, path, json=body)
            assert response.status_code == 400, (method, email, response.status_code, response.text)
            assert response.json()["field"] == "email", (method, email, response.json())
            ledger.tried(ATTACK, (method, email), True)
    assert api.request("GET", "/users/target").json()["email"] == TARGET_EMAIL
    assert api.request("GET", "/users", params={"search": "hostile"}).json()["items"] == []


def test_one_plain_address_or_none_is_taken_as_typed(api: LiveAPI, ledger: Ledger) -> None:
    for n, email in enumerate(PLAIN):
        created = api.request("POST", "/users", json={"login": f"plain{n}", "email": email})
        assert created.status_code == 201 and created.json()["email"] == email, (email, created.text)
        changed = api.request("PATCH", "/users/target", json={"email": email})
        assert changed.status_code == 200 and changed.json()["email"] == email, (email, changed.text)
        ledger.tried(ATTACK, ("plain", email), False)


def test_anyone_but_an_administrator_changes_no_email(api: LiveAPI, ledger: Ledger) -> None:
    for role, email in itertools.product(("nogrant", "reader", "contributor", "projadmin"), HOSTILE[:3] + PLAIN[:1]):
        response = api.request("PATCH", "/users/target", role=role, json={"email": email})
        assert response.status_code in (400, 403), (role, email, response.text)
        ledger.tried(ATTACK, (role, email), True)
    assert api.request("GET", "/users/target").json()["email"] == TARGET_EMAIL
