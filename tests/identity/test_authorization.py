"""Every endpoint x every role: the exact status, and nothing private in a denial.

Roles: anonymous; ``nogrant`` (signed in, no group, no grant); ``reader`` and ``contributor``
(through group grants with those presets on ALPHA); ``projadmin`` (ALPHA's owner, in a group
that may create projects and connections); ``admin`` (global administrator).
"""

from dataclasses import dataclass
from typing import Any

import pytest

from ..conftest import CONNECTION_URL, PROJECT_DESCRIPTION, PROJECT_NAME, SHARED_SECRET, TARGET_EMAIL, LiveAPI

NEVER_IN_A_DENIAL = (PROJECT_NAME, PROJECT_DESCRIPTION, SHARED_SECRET, CONNECTION_URL, TARGET_EMAIL)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: tuple[int, int, int, int, int, int]  # in the order of conftest.ROLES
    body: Any = None


def everyone(status: int) -> tuple[int, int, int, int, int, int]:
    return (401, status, status, status, status, status)


def admin_only(ok: int) -> tuple[int, int, int, int, int, int]:
    return (401, 403, 403, 403, 403, ok)


NEW_DATASET = {"name": "merchants", "connection": "wh", "table": "merchants"}
NEW_CHECK = {"name": "Some rows", "type": "range", "metric": "record_count", "min": 1}
EXPORT = {"history": "checks", "connection": "wh", "table": "history", "dataset": "history"}
NIGHTLY = {
    "id": "nightly",
    "name": "Nightly checks",
    "steps": [{"name": "Check", "type": "run_checks", "dataset": "transactions"}],
}
NEW_SCENARIO = {**NIGHTLY, "id": "made_here"}
CODE_SCENARIO = {
    "id": "coded",
    "name": "Code",
    "steps": [{"name": "Set", "type": "set_variables", "code": "def variables(current):\n    return {}"}],
}
PREVIEW = {"notebook": "work/score.ipynb", "project_files": {"utils.py": "eA=="}}
NEW_CONNECTION = {"name": "made_here", "type": "files", "params": {"url": "s3://made"}}

#                                         anon nogrant reader contrib projadmin admin
CASES = [
    Case("GET", "/me", everyone(200)),
    Case("GET", "/me/project", everyone(200)),
    Case("PUT", "/me/project", (401, 404, 200, 200, 200, 200), {"project": "ALPHA"}),
    Case("PUT", "/me/project", everyone(200), {"project": None}),
    Case("GET", "/users", admin_only(200)),
    Case("POST", "/users", admin_only(201), {"login": "newcomer"}),
    Case("GET", "/users/target", admin_only(200)),
    Case("PATCH", "/users/target", admin_only(200), {"display_name": "T"}),
    Case("GET", "/groups", everyone(200)),
    Case("POST", "/groups", admin_only(201), {"name": "newgroup"}),
    Case("GET", "/groups/readers", everyone(200)),
    Case("PATCH", "/groups/readers", admin_only(200), {"permissions": ["view_audit"]}),
    Case("DELETE", "/groups/readers", admin_only(204)),
    Case("POST", "/groups/readers/members", admin_only(200), {"user": "nogrant"}),
    Case("DELETE", "/groups/readers/members/reader", admin_only(200)),
    # Part C: people filtered, what deactivating would do, deactivating, one person's tokens.
    Case("GET", "/users?kind=user&active=true&search=tar_%25", admin_only(200)),
    Case("GET", "/users?kind=robot", (401, 400, 400, 400, 400, 400)),
    Case("GET", "/users/target/deactivation", admin_only(200)),
    Case("GET", "/users/nobody/deactivation", admin_only(404)),
    Case("PATCH", "/users/target", admin_only(200), {"active": False}),
    Case("PATCH", "/users/target", admin_only(200), {"active": True}),
    Case("GET", "/tokens?user=target", admin_only(200)),
    Case("GET", "/projects", everyone(200)),
    Case("POST", "/projects", (401, 403, 403, 403, 201, 201), {"key": "NEWKEY", "name": "New"}),
    Case("GET", "/projects/ALPHA", (401, 404, 200, 200, 200, 200)),
    Case("PATCH", "/projects/ALPHA", (401, 404, 403, 403, 200, 200), {"description": "changed"}),
    # Part D: archiving; deleting ALPHA is refused after the permission check (its scenario is active).
    Case("PATCH", "/projects/ALPHA", (401, 404, 403, 403, 200, 200), {"status": "archived"}),
    Case("DELETE", "/projects/ALPHA", (401, 404, 403, 403, 409, 409)),
    Case("GET", "/projects/ALPHA/grants", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/grants", (401, 404, 403, 403, 200, 200), {"group": "readers", "preset": "launcher"}),
    Case("DELETE", "/projects/ALPHA/grants/group/readers", (401, 404, 403, 403, 200, 200)),
    Case("GET", "/project-presets", everyone(200)),
    Case("GET", "/auth-matrix", everyone(200)),
    Case("GET", "/auth-matrix?user=target", admin_only(200)),
    Case("GET", "/auth-matrix?group=readers", admin_only(200)),
    # Part E: the access grid; explanations about oneself, a grant holder, or someone holding no grant.
    Case("GET", "/auth-matrix/grid", admin_only(200)),
    Case("GET", "/auth-matrix/grid?subjects=groups&project=ALPHA&search=read&limit=10", admin_only(200)),
    Case(
        "GET", "/auth-matrix/explain?user=reader&project=ALPHA&permission=read_content", (401, 404, 200, 403, 200, 200)
    ),
    Case(
        "GET", "/auth-matrix/explain?user=nogrant&project=ALPHA&permission=read_content", (401, 404, 403, 403, 404, 200)
    ),
    # Part F: the spawn form as a group would see it (tier managers), what runs on a tier.
    Case("GET", "/spawn-form", admin_only(200)),
    Case("GET", "/spawn-form?group=readers", admin_only(200)),
    Case("GET", "/usage?running=true", everyone(200)),
    Case("GET", "/usage?running=true&tier=nowhere", everyone(200)),
    Case("GET", "/runs", everyone(200)),
    Case("GET", "/runs?project=ALPHA&state=failed", everyone(200)),
    Case("GET", "/board", everyone(200)),
    Case("GET", "/board?project=ALPHA&since=7d", everyone(200)),
    Case("GET", "/health", admin_only(200)),
    Case("GET", "/health/live", (200, 200, 200, 200, 200, 200)),
    Case("GET", "/health/ready", (200, 200, 200, 200, 200, 200)),
    Case("GET", "/connections", everyone(200)),
    Case("POST", "/connections", (401, 403, 403, 403, 201, 201), NEW_CONNECTION),
    Case("GET", "/connections/shared_db", (401, 404, 200, 200, 200, 200)),
    Case("PATCH", "/connections/shared_db", (401, 404, 403, 403, 200, 200), {"description": "d"}),
    Case("DELETE", "/connections/shared_db", (401, 404, 403, 403, 204, 204)),
    Case("POST", "/connections/shared_db/test", (401, 404, 200, 200, 200, 200)),
    Case(
        "PUT", "/connections/personal_db/credentials", (401, 404, 200, 200, 200, 200), {"secrets": {"password": "mine"}}
    ),
    Case("GET", "/connections/shared_db/credentials", (401, 404, 200, 200, 200, 200)),
    Case("GET", "/connections/personal_db/credentials", (401, 404, 400, 400, 400, 400)),  # none set yet
    Case("GET", "/projects/ALPHA/datasets", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/datasets", (401, 404, 403, 201, 400, 201), NEW_DATASET),
    Case("GET", "/projects/ALPHA/datasets/transactions", (401, 404, 200, 200, 200, 200)),
    Case("PATCH", "/projects/ALPHA/datasets/transactions", (401, 404, 403, 200, 200, 200), {"description": "d"}),
    Case("DELETE", "/projects/ALPHA/datasets/transactions", (401, 404, 403, 204, 204, 204)),
    Case("GET", "/projects/ALPHA/datasets/transactions/schema", (401, 404, 200, 200, 200, 200)),
    # Read through the platform: projadmin may not use wh, and reads its rows all the same.
    Case("GET", "/projects/ALPHA/datasets/transactions/data?limit=2", (401, 404, 200, 200, 200, 200)),
    Case("GET", "/projects/ALPHA/datasets/transactions/data?columns=secret", (401, 404, 400, 400, 400, 400)),
    Case("POST", "/projects/ALPHA/datasets/transactions/schema", (401, 404, 403, 200, 403, 200)),
    Case("GET", "/projects/ALPHA/datasets/transactions/metrics", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/datasets/transactions/metrics", (401, 404, 403, 200, 403, 200), {}),
    Case("GET", "/projects/ALPHA/metrics", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/metrics", (401, 404, 403, 201, 201, 201), {"name": "auc", "value": 0.91}),
    Case("GET", "/projects/ALPHA/datasets/transactions/checks", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/datasets/transactions/checks", (401, 404, 403, 201, 201, 201), NEW_CHECK),
    Case("POST", "/projects/ALPHA/datasets/transactions/checks/run", (401, 404, 403, 200, 403, 200)),
    Case("GET", "/projects/ALPHA/datasets/transactions/checks/Columns 13", (401, 404, 200, 200, 200, 200)),
    Case("PUT", "/projects/ALPHA/datasets/transactions/checks/Columns 13", (401, 404, 403, 200, 200, 200), NEW_CHECK),
    Case("DELETE", "/projects/ALPHA/datasets/transactions/checks/Columns 13", (401, 404, 403, 204, 204, 204)),
    Case("GET", "/projects/ALPHA/checks/history", (401, 404, 200, 200, 200, 200)),
    # wh does not allow writes, and projadmin may not even see it.
    Case("POST", "/projects/ALPHA/history/export", (401, 404, 403, 403, 400, 403), EXPORT),
    Case("GET", "/variables", everyone(200)),
    Case("PUT", "/variables", admin_only(200), {"variables": {"region": "eu"}}),
    Case("GET", "/projects/ALPHA/variables", (401, 404, 200, 200, 200, 200)),
    Case("PUT", "/projects/ALPHA/variables", (401, 404, 403, 200, 200, 200), {"variables": {"n": 1}}),
    Case("GET", "/tokens", everyone(200)),
    Case("POST", "/tokens", everyone(201), {"name": "mine"}),
    Case("POST", "/tokens", (401, 403, 403, 403, 403, 201), {"user": "target"}),
    Case("POST", "/tokens", (401, 404, 201, 201, 201, 201), {"project": "ALPHA"}),
    Case("DELETE", "/tokens/{target_token}", (401, 404, 404, 404, 404, 204)),
    Case("GET", "/audit", admin_only(200)),
    Case("GET", "/audit/export", admin_only(200)),
    Case("GET", "/audit/verify", admin_only(200)),
    # Part H, the audit page: the values to filter by; a zoned time; a prefix of actions.
    Case("GET", "/audit/facets", admin_only(200)),
    Case("GET", "/audit?since=2026-12-02T10:00:00%2B01:00&action=project&object_type=project", admin_only(200)),
    Case("GET", "/audit/export?format=csv&until=2026-12-02T10:00:00Z&object_id=ALPHA", admin_only(200)),
    Case("GET", "/openapi.json", (200, 200, 200, 200, 200, 200)),
    Case("GET", "/projects/ALPHA/scenarios", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/scenarios", (401, 404, 403, 201, 201, 201), {"definition": NEW_SCENARIO}),
    Case("POST", "/projects/ALPHA/scenarios", (401, 404, 403, 403, 403, 201), {"definition": CODE_SCENARIO}),
    Case("GET", "/projects/ALPHA/scenarios/nightly", (401, 404, 200, 200, 200, 200)),
    Case("PUT", "/projects/ALPHA/scenarios/nightly", (401, 404, 403, 200, 200, 200), {"definition": NIGHTLY}),
    Case("POST", "/projects/ALPHA/project-files/preview", (401, 404, 403, 403, 403, 200), PREVIEW),
    Case("GET", "/projects/ALPHA/bundles", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/bundles", (401, 404, 403, 403, 201, 201), {"note": "matrix"}),
    Case("GET", "/projects/ALPHA/bundles/1/download", (401, 404, 403, 403, 404, 404)),
    # Promotion page (wave 16): no longer trusting a stored bundle key is for administrators.
    Case("DELETE", "/bundle-keys/trusted/nobody", (401, 403, 403, 403, 403, 404)),
    Case("PATCH", "/projects/ALPHA/scenarios/nightly", (401, 404, 403, 200, 200, 200), {"active": False}),
    Case("DELETE", "/projects/ALPHA/scenarios/nightly", (401, 404, 403, 204, 204, 204)),
    Case("GET", "/projects/ALPHA/scenarios/nightly/export", (401, 404, 200, 200, 200, 200)),
    Case("GET", "/projects/ALPHA/scenarios/nightly/parameters", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/scenarios/nightly/run", (401, 404, 403, 201, 201, 201), {}),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs", (401, 404, 200, 200, 200, 200)),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/1", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/projects/ALPHA/scenarios/nightly/runs/1/abort", (401, 404, 403, 409, 409, 409)),
    Case("POST", "/projects/ALPHA/scenarios/nightly/runs/1/rerun", (401, 404, 403, 201, 201, 201), {}),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/1/compare/1", (401, 404, 200, 200, 200, 200)),
    Case(
        "GET",
        "/projects/ALPHA/scenarios/nightly/runs/1/compare/1/notebook?path=x.ipynb",
        (401, 404, 404, 404, 404, 404),
    ),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/1/log", (401, 404, 200, 200, 200, 200)),
    # Retention (issue 18): pinning is for those who run or write; the space is a dashboard's; a purge
    # is for administrators.
    Case("PUT", "/projects/ALPHA/scenarios/nightly/runs/1/pin", (401, 404, 403, 200, 200, 200), {"pinned": True}),
    Case("GET", "/projects/ALPHA/storage", (401, 404, 200, 200, 200, 200)),
    Case("POST", "/retention/purge", admin_only(200), {"dry_run": True}),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/1/report", (401, 404, 404, 404, 404, 404)),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/1/notebook", (401, 404, 404, 404, 404, 404)),
    Case("GET", "/projects/ALPHA/scenarios/nightly/runs/x/log", (401, 404, 404, 404, 404, 404)),
    # Part G, usage and budgets: one's own totals for everyone, anyone's for tier managers; budgets
    # are administrators' to change (the seeded world has none: budget 1 is not there).
    Case("GET", "/usage/totals?by=project", everyone(200)),
    Case("GET", "/usage/totals?user=target", admin_only(200)),
    Case("GET", "/usage/export?format=csv", everyone(200)),
    Case("GET", "/budgets", everyone(200)),
    Case("POST", "/budgets", admin_only(201), {"group": "readers", "amount": 10}),
    Case("GET", "/budgets/1", (401, 404, 404, 404, 404, 404)),
    Case("PATCH", "/budgets/1", (401, 403, 403, 403, 403, 404), {"amount": 5}),
    Case("DELETE", "/budgets/1", (401, 403, 403, 403, 403, 404)),
]

ROLE_NAMES = ("anonymous", "nogrant", "reader", "contributor", "projadmin", "admin")


@pytest.mark.parametrize(
    ("case", "role", "expected"),
    [
        pytest.param(case, role, case.expected[index], id=f"{case.method} {case.path} {role}")
        for case in CASES
        for index, role in enumerate(ROLE_NAMES)
    ],
)
def test_endpoint_role(api: LiveAPI, case: Case, role: str, expected: int) -> None:
    path = case.path.replace("{target_token}", str(api.world.target_token_id))
    response = api.request(case.method, path, role=role, json=case.body)
    assert response.status_code == expected, response.text
    if expected >= 400:
        body = response.json()
        assert set(body) == {"status", "message", "field"}
        assert body["status"] == expected
        for private in NEVER_IN_A_DENIAL:
            assert private not in response.text


def test_invisible_project_is_absent_from_lists(api: LiveAPI) -> None:
    listing = api.request("GET", "/projects", role="nogrant").json()
    assert listing["total"] == 0 and listing["items"] == []
    matrix = api.request("GET", "/auth-matrix", role="nogrant").json()
    assert matrix["projects"] == []
    for private in NEVER_IN_A_DENIAL:
        assert private not in str(listing) + str(matrix)


def test_reader_sees_own_permissions_and_no_connection_details(api: LiveAPI) -> None:
    project = api.request("GET", "/projects/ALPHA", role="reader").json()
    assert project["my_permissions"] == ["read_dashboards", "read_content"]
    connection = api.request("GET", "/connections/shared_db", role="reader").json()
    assert connection["can_use"] and not connection["can_read_details"]
    assert connection["params"] is None and connection["secret_names"] is None
    detailed = api.request("GET", "/connections/shared_db", role="contributor").json()
    assert detailed["params"] == {"url": CONNECTION_URL} and detailed["secret_names"] == ["token"]


def test_project_scoped_token_sees_only_its_project(api: LiveAPI) -> None:
    created = api.request("POST", "/projects", role="admin", json={"key": "OTHER", "name": "Other"})
    assert created.status_code == 201
    scoped = api.request("POST", "/tokens", role="admin", json={"project": "ALPHA"}).json()["token"]
    headers = {"Authorization": f"token {scoped}"}
    listing = api.http.get(api.base + "/projects", headers=headers).json()
    assert [p["key"] for p in listing["items"]] == ["ALPHA"]
    assert api.http.get(api.base + "/projects/OTHER", headers=headers).status_code == 404
    # No global permission through a scoped token, even an administrator's.
    assert api.http.get(api.base + "/users", headers=headers).status_code == 403
    assert api.http.get(api.base + "/me", headers=headers).json()["project_scope"] == "ALPHA"
    # Global objects are out of a scoped token's reach, even its user's own.
    own = api.http.patch(api.base + "/connections/wh", headers=headers, json={"description": "x"})
    assert own.status_code == 403
    unscoped = api.request("POST", "/tokens", role="admin", json={"name": "plain"}).json()
    assert api.http.delete(api.base + f"/tokens/{unscoped['id']}", headers=headers).status_code == 404
    matrix = api.http.get(api.base + "/auth-matrix", headers=headers).json()
    assert [row["project"] for row in matrix["projects"]] == ["ALPHA"]
    assert not any(matrix["global_permissions"].values())


def test_expired_revoked_and_unknown_tokens_are_refused(api: LiveAPI, plane: Any) -> None:
    unknown = api.http.get(api.base + "/me", headers={"Authorization": "token hml_not-a-token"})
    assert unknown.status_code == 401
    mine = api.request("POST", "/tokens", role="reader", json={"name": "short"}).json()
    headers = {"Authorization": f"token {mine['token']}"}
    assert api.http.get(api.base + "/me", headers=headers).status_code == 200
    assert api.request("DELETE", f"/tokens/{mine['id']}", role="reader").status_code == 204
    assert api.http.get(api.base + "/me", headers=headers).status_code == 401
    deactivated = api.request("PATCH", "/users/reader", role="admin", json={"active": False})
    assert deactivated.status_code == 200
    assert api.request("GET", "/me", role="reader").status_code == 401


def test_a_project_scoped_token_cannot_mint_tokens(api: LiveAPI) -> None:
    """A run's short-lived token must not be able to outlive its run."""
    scoped = api.request("POST", "/tokens", role="contributor", json={"project": "ALPHA"}).json()["token"]
    headers = {"Authorization": f"token {scoped}"}
    for body in ({"name": "forever"}, {"name": "forever", "project": "ALPHA"}):
        assert api.http.post(api.base + "/tokens", headers=headers, json=body).status_code == 403


def test_editing_a_scenario_never_borrows_its_owners_rights(api: LiveAPI) -> None:
    """The owner (projadmin) made 'nightly'; once the contributor saves it, it runs as the contributor."""
    assert api.request("GET", "/projects/ALPHA/scenarios/nightly").json()["run_as"] == "projadmin"
    saved = api.request("PUT", "/projects/ALPHA/scenarios/nightly", role="contributor", json={"definition": NIGHTLY})
    assert saved.status_code == 200 and saved.json()["run_as"] == "contributor"
    assert saved.json()["owner"] == "projadmin"
    borrowed = api.request(
        "PUT",
        "/projects/ALPHA/scenarios/nightly",
        role="contributor",
        json={"definition": {**NIGHTLY, "run_as": "projadmin"}},
    )
    assert borrowed.status_code == 403 and borrowed.json()["field"] is None
    assert "administrator" in borrowed.json()["message"]
    named = api.request(
        "PUT", "/projects/ALPHA/scenarios/nightly", json={"definition": {**NIGHTLY, "run_as": "reader"}}
    )
    assert named.status_code == 200 and named.json()["run_as"] == "reader"


def test_refusals_name_what_is_missing_and_who_can_grant_it(api: LiveAPI, plane: Any) -> None:
    """Issue 14: every refusal says the permission missing and who can grant it, naming only
    people the caller may see (a project's administrators to those who see the project, a
    connection's owner to those who see the connection)."""
    from himalia.wire.data import AccessSpec, CreateConnection
    from himalia.wire.identity import SetGrant

    def refusal(method: str, path: str, role: str, body: Any = None) -> str:
        answer = api.request(method, path, role=role, json=body)
        assert answer.status_code == 403, answer.text
        return str(answer.json()["message"])

    assert refusal("POST", "/projects/ALPHA/datasets/transactions/checks/run", "reader") == (
        "reader may read ALPHA but does not hold 'write_content' or 'run_scenarios' on it: "
        "ask projadmin (ALPHA administrators) for it, or an administrator."
    )
    # Administrators through a group are named too, each once, in order.
    plane.projects.set_grant(plane.users.caller_for("projadmin"), "ALPHA", SetGrant(group="creators", preset="admin"))
    assert refusal("PATCH", "/projects/ALPHA", "contributor", {"description": "x"}).endswith(
        "does not hold 'admin' on it: ask projadmin (ALPHA administrators) for it, or an administrator."
    )
    assert refusal("POST", "/projects", "reader", {"key": "NEWKEY", "name": "New"}) == (
        "reader does not hold the global permission 'create_projects': ask an administrator for it."
    )
    owner = plane.users.caller_for("projadmin")
    for name, readable in (("seen", "everyone"), ("unseen", "nobody")):
        plane.connections.create_connection(
            owner,
            CreateConnection(
                name=name,
                type="files",
                params={"url": "s3://team"},
                usable_by=AccessSpec(mode="nobody"),
                details_readable_by=AccessSpec(mode=readable),
            ),
        )
    assert refusal("POST", "/connections/seen/test", "reader") == (
        "reader may not use the connection 'seen': ask projadmin (its owner) for 'use' on it, or an administrator."
    )
    # A connection the reader cannot see stays a 404, its owner unnamed.
    hidden = api.request("POST", "/connections/unseen/test", role="reader")
    assert hidden.status_code == 404 and "projadmin" not in hidden.text
