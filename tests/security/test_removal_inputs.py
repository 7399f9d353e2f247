"""Class 18 (removal inputs): what archiving and deleting a project, and deleting a connection, accept.

The project's administrator sends ``DELETE /projects/ALPHA`` every hostile ``delete_bundles``,
``DELETE /projects/{key}`` and ``/connections/{name}`` hostile names, and ``PATCH /projects/ALPHA``
hostile statuses. Each variant is a 400 naming its field, a 404, or the 409 saying what still
depends on the project; never a 500, and nothing is removed or archived by a refused variant.
Readers get the same 403, people without a grant the same 404, naming nothing private. The last
step deletes the project for real: archived first, then with its bundle versions.
"""

from typing import Any
from urllib.parse import quote

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller

from ..conftest import PROJECT_DESCRIPTION, PROJECT_NAME, LiveAPI
from .conftest import Ledger

ATTACK = "18 removal inputs"

BOOLEANS = ["perhaps", "", "null", "2", "-1", "truee", "t r u e", "[true]", "x" * 5000, "٢"]
NAMES = [
    "alpha",
    "ALPHA ",
    " ALPHA",
    "ALPHA/",
    "../ALPHA",
    "ALPHA/../ALPHA",
    "%2e%2e",
    "ALPHA\x00",
    "ALPHA%00",
    "\u0391LPHA",  # a Greek capital alpha
    "\uff21\uff2c\uff30\uff28\uff21",  # fullwidth
    "' OR '1'='1",
    "ALPHA; DROP TABLE projects",
    "*",
    "%",
    "x" * 41,
    "x" * 5000,
]
STATUSES: list[Any] = ["deleted", "ARCHIVED", "Archived", "", " archived", "archived\x00", 1, True, ["archived"], {}]


def _ok_refusal(response: Any, statuses: set[int]) -> bool:
    """A refusal in the API's one shape, with one of ``statuses``."""
    if response.status_code not in statuses:
        return False
    body = response.json()
    return set(body) == {"status", "message", "field"} and body["status"] == response.status_code


def _alpha_intact(api: LiveAPI) -> bool:
    project = api.request("GET", "/projects/ALPHA")
    scenario = api.request("GET", "/projects/ALPHA/scenarios/nightly")
    return project.json()["status"] == "active" and scenario.json()["active"] is True


def test_hostile_removals_are_refused_and_remove_nothing(api: LiveAPI, plane: ControlPlane, ledger: Ledger) -> None:
    for value in BOOLEANS:
        response = api.request("DELETE", f"/projects/ALPHA?delete_bundles={quote(value)}", role="projadmin")
        refused = _ok_refusal(response, {400}) and response.json()["field"] == "delete_bundles"
        assert ledger.tried(ATTACK, f"delete_bundles={value[:20]!r}", refused), (value, response.text)
    depended = api.request("DELETE", "/projects/ALPHA?delete_bundles=true", role="projadmin")
    assert _ok_refusal(depended, {409}) and "active scenarios (nightly)" in depended.json()["message"]

    for name in NAMES:
        for path in (f"/projects/{quote(name, safe='')}", f"/connections/{quote(name, safe='')}"):
            response = api.request("DELETE", path, role="admin")
            assert ledger.tried(ATTACK, path[:40], _ok_refusal(response, {400, 404})), (path, response.text)

    for status in STATUSES:
        response = api.request("PATCH", "/projects/ALPHA", role="projadmin", json={"status": status})
        refused = _ok_refusal(response, {400}) and response.json()["field"] == "status"
        assert ledger.tried(ATTACK, f"status={status!r}", refused), (status, response.text)

    for role, status in (("reader", 403), ("contributor", 403), ("nogrant", 404), ("anonymous", 401)):
        for method, path, body in (
            ("DELETE", "/projects/ALPHA?delete_bundles=true", None),
            ("PATCH", "/projects/ALPHA", {"status": "archived"}),
        ):
            response = api.request(method, path, role=role, json=body)
            private = (PROJECT_NAME, PROJECT_DESCRIPTION, "nightly")
            refused = response.status_code == status and not any(word in response.text for word in private)
            assert ledger.tried(ATTACK, f"{role} {method}", refused), (role, method, response.text)
    assert _alpha_intact(api)
    assert api.request("GET", "/connections/shared_db").status_code == 200

    plane.bundles.create_bundle(Caller.operator("test"), "ALPHA", note="kept")
    archived = api.request("PATCH", "/projects/ALPHA", role="projadmin", json={"status": "archived"})
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    assert api.request("GET", "/projects/ALPHA/scenarios/nightly").json()["active"] is False
    kept = api.request("DELETE", "/projects/ALPHA", role="projadmin")
    assert _ok_refusal(kept, {409}) and kept.json()["field"] == "delete_bundles"
    assert "holds 1 bundle version(s) (1)" in kept.json()["message"]
    assert api.request("DELETE", "/projects/ALPHA?delete_bundles=true", role="projadmin").status_code == 204
    assert api.request("GET", "/projects/ALPHA").status_code == 404
