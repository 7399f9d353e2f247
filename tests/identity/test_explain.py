"""Access troubleshooting: why a person holds a permission on a project, or who can grant it."""

from typing import Any

from click.testing import CliRunner

from himalia.cli import main
from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.wire.identity import SetGrant, UpdateUser

from ..conftest import AUDIT_KEY, PROJECT_NAME, SECRET_KEY, TARGET_EMAIL, LiveAPI


def explain(api: LiveAPI, user: str, permission: str, project: str = "ALPHA", role: str = "admin") -> Any:
    response = api.request(
        "GET", "/auth-matrix/explain", role=role, params={"user": user, "project": project, "permission": permission}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_granted_directly_names_the_grant_and_the_owner(api: LiveAPI) -> None:
    owner = explain(api, "projadmin", "run_scenarios", role="projadmin")
    assert owner["granted"] is True
    assert owner["sources"] == [
        {
            "kind": "owner",
            "group": None,
            "permission": "run_scenarios",
            "description": "as the project's owner they hold 'run_scenarios' themselves (preset admin)",
        }
    ]
    projadmin = Caller.operator()
    api.plane.projects.set_grant(projadmin, "ALPHA", SetGrant(user="target", permissions=["export_datasets"]))
    target = explain(api, "target", "read_content")
    assert target["granted"] is True
    assert [(s["kind"], s["permission"]) for s in target["sources"]] == [("user", "read_content")]
    assert target["explanation"] == "target holds 'read_content' on ALPHA: a grant to them holds 'read_content'."
    assert target["owner"] == "projadmin"


def test_granted_through_a_group(api: LiveAPI) -> None:
    answer = explain(api, "contributor", "write_content")
    assert answer["granted"] is True
    assert answer["sources"] == [
        {
            "kind": "group",
            "group": "contributors",
            "permission": "write_content",
            "description": "the group 'contributors' they belong to holds 'write_content' (preset contributor)",
        }
    ]
    assert "run_scenarios" in answer["held"]


def test_granted_by_the_global_admin_permission(api: LiveAPI) -> None:
    answer = explain(api, "admin", "admin")
    assert answer["granted"] is True
    assert [(s["kind"], s["group"], s["permission"]) for s in answer["sources"]] == [
        ("global", "administrators", "admin")
    ]
    assert len(answer["held"]) == 6


def test_missing_says_who_can_grant_it_and_how(api: LiveAPI) -> None:
    reader = explain(api, "reader", "run_scenarios")
    assert reader["granted"] is False
    assert reader["sources"] == []
    assert reader["held"] == ["read_dashboards", "read_content"]
    assert reader["project_administrators"] == ["projadmin"]
    assert reader["administrators"] == ["admin"]
    assert "ask projadmin (ALPHA administrators) for it, or an administrator" in reader["explanation"]
    # the reader's own grants come through a group: a grant to them alone adds what is missing
    assert reader["grant_command"] == "himalia project grant ALPHA --user reader --preset launcher"
    nogrant = explain(api, "nogrant", "read_content")
    assert "(they hold nothing)" in nogrant["explanation"]
    assert nogrant["grant_command"] == "himalia project grant ALPHA --user nogrant --preset reader"


def test_an_inactive_user_holds_nothing_until_reactivated(api: LiveAPI) -> None:
    api.plane.users.update_user(Caller.operator(), "contributor", UpdateUser(active=False))
    answer = explain(api, "contributor", "read_content")
    assert answer["granted"] is False
    assert answer["user_active"] is False
    assert answer["sources"][0]["group"] == "contributors"  # what would apply once reactivated
    assert "deactivated" in answer["explanation"]
    assert answer["grant_command"] is None


def test_unknown_permission_user_and_project(api: LiveAPI) -> None:
    bad = api.request("GET", "/auth-matrix/explain", params={"user": "reader", "project": "ALPHA", "permission": "fly"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "permission"
    missing = api.request("GET", "/auth-matrix/explain", params={"user": "reader", "project": "ALPHA"})
    assert missing.status_code == 400 and missing.json()["field"] == "permission"
    nobody = api.request(
        "GET", "/auth-matrix/explain", params={"user": "nobody", "project": "ALPHA", "permission": "read_content"}
    )
    assert nobody.status_code == 404 and nobody.json()["field"] == "user"
    absent = explain(api, "reader", "read_content", project="NOPE")
    assert absent["project_exists"] is False and absent["granted"] is False
    assert absent["explanation"] == "There is no project 'NOPE'."


def test_project_admins_ask_only_about_those_holding_a_grant(api: LiveAPI) -> None:
    """Asked about anyone else, the same 404 whether or not the person exists: no enumeration."""
    reader = explain(api, "reader", "read_content", role="projadmin")  # through the group 'readers'
    assert reader["granted"] is True
    assert reader["administrators"] == []  # only administrators are told who the administrators are
    assert reader["project_administrators"] == ["projadmin"]
    answers = {}
    for login in ("nogrant", "admin", "target", "nobody"):
        params = {"user": login, "project": "ALPHA", "permission": "read_content"}
        response = api.request("GET", "/auth-matrix/explain", role="projadmin", params=params)
        assert response.status_code == 404, (login, response.text)
        assert response.json()["field"] == "user"
        answers[login] = response.json()["message"].replace(f"'{login}'", "'X'")
    assert len(set(answers.values())) == 1, answers
    assert TARGET_EMAIL not in str(answers)
    api.plane.projects.set_grant(Caller.operator(), "ALPHA", SetGrant(user="target", preset="launcher"))
    assert explain(api, "target", "run_scenarios", role="projadmin")["granted"] is True


def test_anyone_who_sees_the_project_asks_about_themselves(api: LiveAPI) -> None:
    mine = explain(api, "reader", "run_scenarios", role="reader")
    assert mine["granted"] is False
    assert mine["administrators"] == []
    assert "ask projadmin (ALPHA administrators) for it" in mine["explanation"]
    params = {"user": "nogrant", "project": "ALPHA", "permission": "read_content"}
    outsider = api.request("GET", "/auth-matrix/explain", role="nogrant", params=params)
    assert outsider.status_code == 404  # as if ALPHA did not exist
    assert outsider.json()["message"] == "There is no project 'ALPHA'."
    assert PROJECT_NAME not in outsider.text


def test_others_are_denied_to_anyone_but_administrators_and_project_admins(api: LiveAPI) -> None:
    params = {"user": "reader", "project": "ALPHA", "permission": "read_content"}
    contributor = api.request("GET", "/auth-matrix/explain", role="contributor", params=params)
    assert contributor.status_code == 403
    assert "'admin'" in contributor.json()["message"]
    assert "ask projadmin (ALPHA administrators) for it" in contributor.json()["message"]
    outsider = api.request("GET", "/auth-matrix/explain", role="nogrant", params=params)
    assert outsider.status_code == 404  # as if ALPHA did not exist
    hidden = api.request("GET", "/auth-matrix/explain", role="projadmin", params={**params, "project": "NOPE"})
    assert hidden.status_code == 404
    assert api.request("GET", "/auth-matrix/explain", role="anonymous", params=params).status_code == 401


def test_the_cli_answers_in_sentences(plane: ControlPlane) -> None:
    runner = CliRunner()
    environment = {"HIMALIA_SECRET_KEYS": SECRET_KEY, "HIMALIA_AUDIT_KEY": AUDIT_KEY}

    def himalia(*arguments: str) -> Any:
        return runner.invoke(main, ["--home", plane.home, "--db-url", plane.db.url, *arguments], env=environment)

    granted = himalia("project", "explain", "ALPHA", "contributor", "write_content")
    assert granted.exit_code == 0, granted.output
    assert "contributor holds 'write_content' on ALPHA" in granted.output
    missing = himalia("--as", "projadmin", "project", "explain", "ALPHA", "reader", "admin")
    assert missing.exit_code == 0, missing.output
    assert "to grant it: himalia project grant ALPHA --user reader --preset admin" in missing.output
    refused = himalia("--as", "reader", "project", "explain", "ALPHA", "contributor", "admin")
    assert refused.exit_code == 1
    assert "does not hold 'admin' on it" in refused.output
    mine = himalia("--as", "reader", "project", "explain", "ALPHA", "reader", "admin")
    assert mine.exit_code == 0, mine.output
    assert "reader does not hold 'admin' on ALPHA" in mine.output
    unknown = himalia("project", "explain", "ALPHA", "reader", "fly")
    assert unknown.exit_code == 2 and "fly" in unknown.output
