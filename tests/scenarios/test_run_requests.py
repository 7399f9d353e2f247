"""Requesting runs: parameters checked, missing notebooks, permissions, export and import."""

import json
from pathlib import Path
from typing import Any

import yaml

from himalia.identity.caller import Caller
from himalia.wire.data import AccessSpec, CreateConnection
from himalia.wire.identity import CreateGroup, CreateToken, CreateUser, SetGrant

from ..conftest import LiveAPI
from .conftest import (
    BASE,
    add_row_checks,
    error_of,
    log_of,
    notebook,
    save,
    saved,
    start,
    steps,
    values_step,
    wait,
    warehouse_url,
)

#: What a reader of ALPHA hears when running, aborting or re-running: who holds admin there grants it.
READER_REFUSED = (
    "reader may read ALPHA but does not hold 'run_scenarios' on it: "
    "ask projadmin (ALPHA administrators) for it, or an administrator."
)


def test_parameters_are_checked(light: LiveAPI) -> None:
    nb = {"p.ipynb": notebook("print(x)", parameters='x: int = 1\nname: str = "a"')}

    def definition(parameters: dict[str, Any], scenario: str = "params") -> dict[str, Any]:
        return {
            "id": scenario,
            "name": "Params",
            "variables": {"n": 5, "t": "five"},
            "steps": [
                values_step("First"),
                {"name": "Nb", "type": "notebook", "notebook": "p.ipynb", "parameters": parameters},
            ],
        }

    message, field = error_of(save(light, definition({"zz": 1}), nb), 400)
    assert field == "steps[1].parameters.zz"
    assert message == "steps[1].parameters.zz: p.ipynb declares no parameter 'zz' (declared: name, x)"
    message, field = error_of(save(light, definition({"x": "seven"}), nb), 400)
    assert field == "steps[1].parameters.x"
    assert message == 'steps[1].parameters.x: the notebook declares x: int, not str "seven"'
    assert error_of(save(light, definition({"x": True}), nb), 400)[1] == "steps[1].parameters.x"
    assert light.request("GET", f"{BASE}/params").status_code == 404

    saved(light, definition({"x": 3}), nb)
    message, field = error_of(light.request("POST", f"{BASE}/params/run", json={"parameters": {"y": 1}}), 400)
    assert field == "parameters.y"
    assert message == "parameters.y: no notebook step of 'params' declares a parameter 'y' (declared: name, x)"
    message, field = error_of(light.request("POST", f"{BASE}/params/run", json={"parameters": {"x": 1.5}}), 400)
    assert field == "parameters.x"
    assert message == "parameters.x: the notebook declares x: int, not float 1.5"
    assert light.request("GET", f"{BASE}/params/runs").json()["total"] == 0
    described = light.request("GET", f"{BASE}/params/parameters").json()
    assert described["steps"][0]["parameters"] == [
        {"name": "x", "type": "int", "default": "1", "help": "", "value": 3},
        {"name": "name", "type": "str", "default": '"a"', "help": "", "value": None},
    ]

    # "${t}" keeps the variable's type (text here): an int parameter refuses it before any kernel starts.
    saved(light, definition({"x": "${t}"}), nb)
    run = wait(light, "params", start(light, "params"))
    assert run["state"] == "failed"
    assert steps(run)[1] == ("failed", 'parameters.x: the notebook declares x: int, not str "five"')
    assert run["artifacts"] == [] and "papermill" not in log_of(light, "params", run["id"])
    saved(light, {"id": "nonb", "name": "No notebook", "steps": [values_step("Only")]})
    message, field = error_of(light.request("POST", f"{BASE}/nonb/run", json={"parameters": {"x": 1}}), 400)
    assert (message, field) == (
        "parameters.x: no notebook step of 'nonb' declares a parameter 'x' (declared: none)",
        "parameters.x",
    )
    saved(light, definition({"name": "${nope}"}), nb)
    run = wait(light, "params", start(light, "params"))
    assert steps(run)[1] == ("failed", "Unknown variable 'nope' in \"${nope}\".")


def test_missing_notebooks(light: LiveAPI, tmp_path: Path) -> None:
    root = Path(light.plane.notebook_root)
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "on-disk.ipynb").write_text(json.dumps(notebook("print(1)")))
    (tmp_path / "outside.ipynb").write_text(json.dumps(notebook("print(1)")))

    def definition(path: str) -> dict[str, Any]:
        return {
            "id": "disk",
            "name": "Disk",
            "steps": [values_step("First"), {"name": "Nb", "type": "notebook", "notebook": path}],
        }

    for path in ("nowhere.ipynb", "../outside.ipynb"):
        message, field = error_of(save(light, definition(path)), 400)
        assert field == "steps[1].notebook"
        assert message == f"steps[1].notebook: there is no notebook '{path}' (send its content, or save it first)."
    message, field = error_of(save(light, definition("sub")), 400)  # not a notebook path: the schema refuses it
    assert field is not None and "steps.1.notebook" in field and "ipynb" in message
    described = saved(light, definition("sub/on-disk.ipynb"))
    assert list(described["notebooks"]) == ["sub/on-disk.ipynb"]
    bad = save(light, definition("bad.ipynb"), {"bad.ipynb": {"cells": "no"}})
    message, field = error_of(bad, 400)
    assert field == "notebooks.bad.ipynb" and message.startswith("notebooks.bad.ipynb: not a valid notebook")


def test_permissions(light: LiveAPI) -> None:
    plane = light.plane
    operator = Caller.operator("test", client_address="test")
    plane.users.create_group(operator, CreateGroup(name="launchers"))
    plane.users.create_user(operator, CreateUser(login="launch", email="launch@example.org", groups=["launchers"]))
    plane.projects.set_grant(
        plane.users.caller_for("projadmin"), "ALPHA", SetGrant(group="launchers", preset="launcher")
    )
    launch_token = plane.tokens.create_token(operator, CreateToken(user="launch")).token

    def as_launcher(method: str, path: str, **kwargs: Any) -> Any:
        return light.request(method, path, "anonymous", headers={"Authorization": f"token {launch_token}"}, **kwargs)

    nb_definition = {
        "id": "nb",
        "name": "Notebook",
        "steps": [{"name": "Nb", "type": "notebook", "notebook": "n.ipynb"}],
    }
    checks = {
        "id": "chk",
        "name": "Checks",
        "steps": [{"name": "Checks", "type": "run_checks", "dataset": "transactions"}],
    }
    saved(light, nb_definition, {"n.ipynb": notebook("print(1)")})

    # contributor: write_content and run_scenarios, but neither write_isolated_code nor write_unsafe_code
    message, _ = error_of(save(light, nb_definition, {"n.ipynb": notebook("print(2)")}, "contributor"), 403)
    assert "write_isolated_code" in message
    code = {"name": "Code", "type": "set_variables", "code": "def variables(c):\n    return {}"}
    assert save(light, {**checks, "id": "code", "steps": [code]}, role="contributor").status_code == 403
    elevated = save(light, {**checks, "run_as": "admin"}, role="contributor")
    assert error_of(elevated, 403)[0] == "run_as: only an administrator may make a scenario run as someone else."
    created = save(light, checks, role="contributor")
    assert created.status_code == 200, created.text
    assert (created.json()["owner"], created.json()["run_as"]) == ("contributor", "contributor")
    run_id = start(light, "chk", "contributor")
    run = wait(light, "chk", run_id)
    assert run["state"] == "succeeded" and run["run_as"] == "contributor" and run["requested_by"] == "contributor"

    # a run acts as its run-as user: a connection the contributor may not use stays closed to its run
    admin = plane.users.caller_for("admin")
    warehouse = warehouse_url(plane)
    plane.connections.create_connection(
        admin,
        CreateConnection(name="locked", type="sql", params={"url": warehouse}, usable_by=AccessSpec(mode="nobody")),
    )
    query = {"name": "Query", "type": "sql", "connection": "locked", "statement": "SELECT 1"}
    saved_q = save(light, {"id": "lockedq", "name": "Locked", "steps": [query]}, role="contributor")
    assert saved_q.status_code == 200, saved_q.text
    locked = wait(light, "lockedq", start(light, "lockedq", "contributor"))
    assert locked["state"] == "failed"
    assert steps(locked) == [
        ("failed", "contributor may not use the connection 'locked': ask an administrator for 'use' on it.")
    ]

    # reader: reads scenarios and runs, may not run, abort, re-run or save
    listed = light.request("GET", BASE, "reader").json()["items"]
    assert {"nb", "chk"} <= {s["id"] for s in listed}
    for path in (
        "/chk",
        "/chk/export",
        "/chk/parameters",
        "/chk/runs",
        f"/chk/runs/{run_id}",
        f"/chk/runs/{run_id}/log",
    ):
        assert light.request("GET", BASE + path, "reader").status_code == 200, path
    for method, path in (
        ("POST", "/chk/run"),
        ("POST", f"/chk/runs/{run_id}/rerun"),
        ("POST", f"/chk/runs/{run_id}/abort"),
    ):
        message, _ = error_of(light.request(method, BASE + path, "reader", json={}), 403)
        assert message == READER_REFUSED, (path, message)
    assert save(light, checks, role="reader").status_code == 403
    assert light.request("DELETE", f"{BASE}/chk", "reader").status_code == 403

    # launcher: sees and runs scenarios without read_content, may not change them
    assert {"nb", "chk"} <= {s["id"] for s in as_launcher("GET", BASE).json()["items"]}
    assert as_launcher("GET", f"{BASE}/nb/parameters").status_code == 200
    launched = as_launcher("POST", f"{BASE}/chk/run", json={})
    assert launched.status_code == 201, launched.text
    assert launched.json()["requested_by"] == "launch" and launched.json()["run_as"] == "contributor"
    assert wait(light, "chk", launched.json()["id"])["state"] == "succeeded"
    assert as_launcher("PUT", f"{BASE}/chk", json={"definition": checks}).status_code == 403
    assert as_launcher("GET", "/projects/ALPHA/datasets").status_code == 403

    # no grant: the project and its scenarios do not exist; anonymous: not authenticated
    for role, status in (("nogrant", 404), ("anonymous", 401)):
        for method, path in (
            ("GET", ""),
            ("GET", "/chk"),
            ("GET", f"/chk/runs/{run_id}"),
            ("GET", f"/chk/runs/{run_id}/log"),
            ("POST", "/chk/run"),
            ("POST", f"/chk/runs/{run_id}/abort"),
            ("PUT", "/chk"),
        ):
            body = {"definition": checks} if method == "PUT" else {}
            assert light.request(method, BASE + path, role, json=body).status_code == status, (role, method, path)
    assert light.request("GET", f"{BASE}/chk/runs/999999").status_code == 404
    assert light.request("GET", f"{BASE}/chk/runs/abc").status_code == 404


def test_export_round_trip(light: LiveAPI) -> None:
    add_row_checks(light.plane)
    nb = {"score.ipynb": notebook("print(x)")}
    definition = {
        "id": "roundtrip",
        "name": "Round trip: «quotes» and 'colons'",
        "description": "Multi-line\ndescription: with a colon",
        "active": False,
        "timeout": "2h",
        "concurrency": "queue",
        "catch_up": "run_once",
        "variables": {"threshold": 0.8, "nested": {"a": [1, "two"]}, "text": "${threshold}"},
        "steps": [
            {"name": "Checks", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]},
            {"name": "Metrics", "type": "compute_metrics", "dataset": "transactions"},
            {
                "name": "Day",
                "type": "set_variables",
                "code": "def variables(current):\n    return {'day': 'yesterday'}\n",
            },
            {
                "name": "Score",
                "type": "notebook",
                "notebook": "score.ipynb",
                "parameters": {"x": 2},
                "timeout": "90s",
                "retries": 1,
                "hide_code": True,
                "run_if": "always",
                "ignore_failure": True,
            },
            {
                "name": "Query",
                "type": "sql",
                "connection": "wh",
                "statement": "SELECT :v",
                "parameters": {"v": "${day}"},
            },
        ],
        "triggers": [
            {"type": "time", "schedule": "daily at 02:00", "timezone": "Europe/Paris"},
            {"type": "dataset_change", "dataset": "transactions", "column": "transaction_id", "grace": "1m"},
        ],
        "reporters": [
            {"type": "email", "to": ["team@example.org"], "when": "failure", "attach": {"log": True}},
            {"type": "webhook", "url": "https://hooks.example.org/x", "format": "slack"},
        ],
    }
    first = saved(light, definition, nb)
    exported = light.request("GET", f"{BASE}/roundtrip/export")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/yaml")
    text = exported.text
    assert text.startswith("# Scenario ALPHA/roundtrip, revision 1")
    assert yaml.safe_load(text)["id"] == "roundtrip"
    put = light.request("PUT", f"{BASE}/roundtrip", json={"yaml": text, "notebooks": nb})
    assert put.status_code == 200, put.text
    second = put.json()
    assert second["revision"] == 1, "saving back what was exported changes nothing"
    assert second["definition"] == first["definition"]
    assert second["notebooks"] == first["notebooks"]
    assert light.request("GET", f"{BASE}/roundtrip/export").text == text
    wrong = light.request("PUT", f"{BASE}/other", json={"yaml": text, "notebooks": nb})
    assert error_of(wrong, 400) == ("yaml:2: id: the body describes 'roundtrip', not 'other'.", "id")
    broken = light.request("PUT", f"{BASE}/roundtrip", json={"yaml": text.replace("timeout: 90s", "timeout: soon")})
    message, field = error_of(broken, 400)
    assert field == "steps[3].timeout" and "'soon' is not a duration" in message
