"""Deleting a connection is refused while datasets read it or scenarios name it (SQL steps and
``sql_condition`` triggers), in one sentence that names only what the caller may see.

A scenario names a connection by its name, not a row: deleting it would leave the scenario to
fail at its next run (or its trigger to poll nothing), so the refusal lists the scenarios as
``KEY/id`` in the projects the caller may read and counts those of the others.
"""

import sqlite3
from pathlib import Path

from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission as G
from himalia.identity.caller import Caller
from himalia.wire.data import AccessSpec, CreateConnection, CreateDataset
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.identity import CreateGroup, CreateProject
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI

OPERATOR = Caller.operator("test-setup", client_address="test")
AFTERWARDS = "delete them or point them at another connection first."


def save(plane: ControlPlane, login: str, key: str, scenario: dict[str, object]) -> None:
    definition = ScenarioDefinition.model_validate(scenario)
    plane.scenarios.save_scenario(plane.users.caller_for(login), key, SaveScenario(definition=definition))


def purge(connection: str) -> dict[str, object]:
    """A nightly scenario whose SQL step writes through ``connection``."""
    return {
        "id": "purge",
        "name": "Purge",
        "steps": [{"name": "Purge", "type": "sql", "connection": connection, "statement": "delete from t"}],
        "triggers": [{"type": "time", "schedule": "daily at 02:00"}],
    }


def test_a_connection_scenarios_name_is_kept_and_the_refusal_names_what_the_caller_sees(
    api: LiveAPI, tmp_path: Path
) -> None:
    plane = api.plane
    warehouse = tmp_path / "wh2.sqlite"
    with sqlite3.connect(warehouse) as database:
        database.execute("CREATE TABLE t (x INTEGER)")
    # projadmin owns the connection (they may delete it) and ALPHA; BETA is hidden from them.
    plane.users.create_group(OPERATOR, CreateGroup(name="local-data", permissions=[G.WRITE_UNSAFE_CODE]))
    plane.users.add_member(OPERATOR, "local-data", "projadmin")  # a SQLite file is local data
    plane.connections.create_connection(
        plane.users.caller_for("projadmin"),
        CreateConnection(
            name="wh2",
            type="sql",
            params={"url": f"sqlite:///{warehouse}"},
            usable_by=AccessSpec(mode="groups", groups=["readers", "contributors"]),
        ),
    )
    plane.projects.create_project(plane.users.caller_for("admin"), CreateProject(key="BETA", name="Beta"))
    save(plane, "projadmin", "ALPHA", purge("wh2"))
    save(
        plane,
        "admin",
        "BETA",
        {
            "id": "watch",
            "name": "Watch",
            "steps": [{"name": "Check", "type": "sql", "connection": "wh", "statement": "select 1"}],
            "triggers": [{"type": "sql_condition", "connection": "wh2", "query": "select count(*) from t"}],
        },
    )
    # Only its name says 'wh2': it names another connection, and does not count.
    save(plane, "admin", "BETA", {**purge("wh"), "id": "named-alike", "name": "wh2"})

    refused = api.request("DELETE", "/connections/wh2", role="projadmin")
    assert refused.status_code == 409, refused.text
    assert refused.json()["message"] == (
        "2 scenario(s) use 'wh2' in SQL steps or triggers (ALPHA/purge, 1 in projects you do not see): " + AFTERWARDS
    )
    assert "BETA" not in refused.text and "watch" not in refused.text
    everything = api.request("DELETE", "/connections/wh2", role="admin")
    assert everything.status_code == 409
    assert "(ALPHA/purge, BETA/watch)" in everything.json()["message"]

    # With a dataset reading it too: one sentence for both.
    plane.datasets.create_dataset(
        plane.users.caller_for("admin"), "ALPHA", CreateDataset(name="purged", connection="wh2", table="t")
    )
    both = api.request("DELETE", "/connections/wh2", role="projadmin")
    assert both.status_code == 409
    assert both.json()["message"] == (
        "1 dataset(s) read 'wh2' (ALPHA/purged) and 2 scenario(s) use it in SQL steps or triggers "
        "(ALPHA/purge, 1 in projects you do not see): " + AFTERWARDS
    )
    assert api.request("GET", "/connections/wh2", role="projadmin").status_code == 200
    assert api.request("GET", "/projects/ALPHA/scenarios/purge", role="projadmin").status_code == 200

    # Once nothing names it, it goes.
    admin = plane.users.caller_for("admin")
    plane.datasets.delete_dataset(admin, "ALPHA", "purged")
    plane.scenarios.delete_scenario(admin, "ALPHA", "purge")
    save(plane, "admin", "BETA", {**purge("wh"), "id": "watch", "name": "Watch"})
    assert api.request("DELETE", "/connections/wh2", role="projadmin").status_code == 204
    assert api.request("GET", "/connections/wh2", role="admin").status_code == 404
