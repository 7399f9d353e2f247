"""Class 20 (trusted key names): the name of ``DELETE /bundle-keys/trusted/{name}``.

An administrator sends every hostile, malformed or unknown key name: each is a 404 or a 400
naming it, never a 500, and no trusted key is removed; anyone else gets the same 403 whatever
the name (a path that reaches no route is everyone's 404), so the endpoint tells nobody which keys are trusted.
"""

from urllib.parse import quote

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "20 trusted key names"

NAMES = [
    "nobody",
    "x" * 300,
    "..",
    "%2e%2e",
    "' OR '1'='1",
    "name; DROP TABLE trusted_keys",
    "\u202eeman",
    "\uff4e\uff41\uff4d\uff45",
    "*",
    "%",
    "_",
    "a/b",
    "this-instance",
    " ",
]


def test_a_hostile_key_name_removes_nothing_and_tells_nobody(api: LiveAPI, ledger: Ledger) -> None:
    trusted_before = api.request("GET", "/bundle-keys/trusted").json()
    for name in NAMES:
        path = "/bundle-keys/trusted/" + quote(name, safe="")
        answered = api.request("DELETE", path)
        refused = answered.status_code in {400, 404}
        assert refused, (name, answered.status_code, answered.text)
        for role in ("nogrant", "reader", "projadmin"):
            # 403 whatever the name; a path that reaches no route ('..') is the same 404 for everyone.
            denied = api.request("DELETE", path, role=role).status_code
            assert denied == 403 or denied == answered.status_code == 404, (name, role, denied)
        ledger.tried(ATTACK, name, refused)
    assert api.request("GET", "/bundle-keys/trusted").json() == trusted_before
