"""The access grid: people or groups against projects, effective permissions and their sources."""

from typing import Any

import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.identity import CreateGroup, CreateProject, CreateToken, CreateUser, SetGrant, UpdateUser

from ..conftest import LiveAPI

EVERYTHING = ["read_dashboards", "read_content", "write_content", "run_scenarios", "export_datasets", "admin"]


def grid(api: LiveAPI, role: str = "admin", **params: Any) -> Any:
    response = api.request("GET", "/auth-matrix/grid", role=role, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def row(answer: Any, name: str) -> Any:
    return next(subject for subject in answer["subjects"] if subject["name"] == name)


def cell(subject: Any, project: str) -> Any:
    return next((c for c in subject["cells"] if c["project"] == project), None)


def test_people_hold_what_their_grants_and_groups_give(api: LiveAPI) -> None:
    answer = grid(api)
    assert answer["subject_type"] == "user"
    assert [p["key"] for p in answer["projects"]] == ["ALPHA"]
    assert answer["projects"][0]["owner"] == "projadmin"
    people = ["admin", "contributor", "nogrant", "projadmin", "reader", "target"]
    assert [s["name"] for s in answer["subjects"]] == people
    assert answer["total"] == 6

    reader = cell(row(answer, "reader"), "ALPHA")
    assert reader["permissions"] == ["read_dashboards", "read_content"]
    assert reader["preset"] == "reader"
    assert reader["sources"] == [
        {"kind": "group", "group": "readers", "permissions": ["read_dashboards", "read_content"], "preset": "reader"}
    ]
    assert row(answer, "reader")["groups"] == ["readers"]

    owner = cell(row(answer, "projadmin"), "ALPHA")
    assert owner["sources"] == [{"kind": "owner", "group": None, "permissions": EVERYTHING, "preset": "admin"}]
    assert row(answer, "projadmin")["global_permissions"] == ["create_projects", "create_connections"]

    admin = row(answer, "admin")
    assert admin["global_permissions"][0] == "admin" and len(admin["global_permissions"]) == 8
    assert cell(admin, "ALPHA")["sources"] == [
        {"kind": "global", "group": "administrators", "permissions": EVERYTHING, "preset": "admin"}
    ]
    assert row(answer, "nogrant")["cells"] == []


def test_sources_add_up_and_a_direct_grant_is_told_apart(api: LiveAPI) -> None:
    operator = Caller.operator()
    api.plane.projects.set_grant(operator, "ALPHA", SetGrant(user="reader", permissions=["run_scenarios"]))
    reader = cell(row(grid(api), "reader"), "ALPHA")
    assert reader["permissions"] == ["read_dashboards", "read_content", "run_scenarios"]
    assert reader["preset"] is None  # reader + launcher is no preset
    assert [(s["kind"], s["group"], s["preset"]) for s in reader["sources"]] == [
        ("user", None, "launcher"),
        ("group", "readers", "reader"),
    ]


def test_groups_hold_their_own_grants_and_global_admin(api: LiveAPI) -> None:
    answer = grid(api, subjects="groups")
    assert answer["subject_type"] == "group"
    assert [s["name"] for s in answer["subjects"]] == ["administrators", "contributors", "creators", "readers"]
    contributors = row(answer, "contributors")
    assert cell(contributors, "ALPHA")["preset"] == "contributor"
    assert contributors["kind"] == "group" and contributors["groups"] == []
    administrators = row(answer, "administrators")
    assert cell(administrators, "ALPHA")["sources"][0]["kind"] == "global"
    assert row(answer, "creators")["cells"] == []

    changed = api.request("POST", "/projects/ALPHA/grants", json={"group": "creators", "preset": "launcher"})
    assert changed.status_code == 200, changed.text
    creators = cell(row(grid(api, subjects="groups"), "creators"), "ALPHA")
    assert creators["permissions"] == ["read_dashboards", "run_scenarios"]
    # the change shows on each member's row too
    assert [s["group"] for s in cell(row(grid(api), "projadmin"), "ALPHA")["sources"]] == [None, "creators"]


def test_a_deactivated_person_holds_nothing_but_keeps_their_sources(api: LiveAPI) -> None:
    api.plane.users.update_user(Caller.operator(), "contributor", UpdateUser(active=False))
    contributor = row(grid(api), "contributor")
    assert contributor["active"] is False
    assert contributor["global_permissions"] == []
    alpha = cell(contributor, "ALPHA")
    assert alpha["permissions"] == [] and alpha["preset"] is None
    assert alpha["sources"][0]["group"] == "contributors"


def test_search_pages_and_one_project(api: LiveAPI) -> None:
    operator = Caller.operator()
    api.plane.projects.create_project(operator, CreateProject(key="BETA", name="Beta", owner="target"))
    found = grid(api, search="ADM")
    assert [s["name"] for s in found["subjects"]] == ["admin", "projadmin"]
    assert [p["key"] for p in found["projects"]] == ["ALPHA", "BETA"]
    assert cell(row(found, "admin"), "BETA") is not None and cell(row(found, "projadmin"), "BETA") is None
    second = grid(api, limit=2, offset=2)
    assert [s["name"] for s in second["subjects"]] == ["nogrant", "projadmin"]
    assert second["total"] == 6 and second["limit"] == 2 and second["offset"] == 2
    beta = grid(api, project="BETA")
    assert [p["key"] for p in beta["projects"]] == ["BETA"]
    assert cell(row(beta, "target"), "BETA")["sources"][0]["kind"] == "owner"
    assert row(beta, "reader")["cells"] == []
    assert grid(api, search="%")["subjects"] == []  # a wildcard is a character like any other
    assert grid(api, subjects="groups", search="nothing-like-it") == {
        "subject_type": "group",
        "projects": found["projects"],
        "subjects": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"subjects": "tokens"}, "subjects"),
        ({"project": "lower"}, "project"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"search": "x" * 201}, "search"),
    ],
)
def test_bad_queries_name_their_field(api: LiveAPI, params: dict[str, Any], field: str) -> None:
    response = api.request("GET", "/auth-matrix/grid", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_an_unknown_project_is_a_404_naming_it(api: LiveAPI) -> None:
    response = api.request("GET", "/auth-matrix/grid", params={"project": "NOPE"})
    assert response.status_code == 404
    assert response.json() == {"status": 404, "message": "There is no project 'NOPE'.", "field": "project"}


@pytest.mark.parametrize("role", ["nogrant", "reader", "contributor", "projadmin"])
def test_only_administrators_see_the_grid(api: LiveAPI, role: str) -> None:
    response = api.request("GET", "/auth-matrix/grid", role=role)
    assert response.status_code == 403
    assert "'admin'" in response.json()["message"]
    assert "target" not in response.text
    assert api.request("GET", "/auth-matrix/grid", role="anonymous").status_code == 401


def test_an_administrators_project_token_holds_no_global_permission(api: LiveAPI) -> None:
    token = api.plane.tokens.create_token(Caller.operator(), CreateToken(user="admin", project="ALPHA")).token
    response = api.http.get(api.base + "/auth-matrix/grid", headers={"Authorization": f"token {token}"}, timeout=30)
    assert response.status_code == 403


def _grow(plane: ControlPlane, prefix: str, count: int) -> None:
    """More projects, people and groups, granted in every way a cell can come about."""
    operator = Caller.operator()
    group = f"{prefix.lower()}-team"
    plane.users.create_group(operator, CreateGroup(name=group))
    for index in range(count):
        login = f"{prefix.lower()}{index:03d}"
        plane.users.create_user(operator, CreateUser(login=login, groups=[group] if index % 2 else []))
        key = f"{prefix}{index:03d}"
        plane.projects.create_project(operator, CreateProject(key=key, name=key, owner=login))
        plane.projects.set_grant(operator, key, SetGrant(group=group, preset="launcher"))
        plane.projects.set_grant(operator, key, SetGrant(user="reader", preset="reader"))


@pytest.mark.parametrize("subjects", ["users", "groups"])
def test_the_grid_reads_in_a_bounded_number_of_statements(
    plane: ControlPlane, count_statements: Any, subjects: str
) -> None:
    admin = plane.users.caller_for("admin")
    counts = []
    for prefix, count in (("FEW", 3), ("MANY", 40)):
        _grow(plane, prefix, count)
        with count_statements() as statements:
            answer = plane.projects.access_grid(admin, subjects, None, None, 500, 0)
        counts.append(len(statements))
        assert any(subject.cells for subject in answer.subjects)
    assert counts[0] == counts[1], counts
    assert counts[1] <= 5
    assert len(answer.projects) == 1 + 3 + 40
