"""The home's operator socket: ``himalia scenario run`` hands its run to the control plane serving
the home, authenticated by the OS account; a run is followed by GETs that wait until it changed."""

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from himalia.cli import main
from himalia.cli import scenarios as cli_scenarios
from himalia.cli.serving import Refused, ServingPlane, scenario_path
from himalia.controlplane import ControlPlane
from himalia.core.operator_socket import socket_path
from himalia.hosts.operator_socket import answers
from himalia.identity.caller import Caller
from himalia.wire.scenarios import SaveScenario

from ..conftest import LiveAPI, Serving
from .conftest import blocker, values_step


@pytest.fixture
def serving(plane: ControlPlane, light: LiveAPI) -> Iterator[Serving]:
    served = Serving(plane)
    assert served.socket is not None, "the test's home path is too long for a Unix socket"
    yield served
    served.stop()


def save(plane: ControlPlane, slug: str, steps: list[dict[str, Any]]) -> None:
    definition = {"id": slug, "name": slug, "steps": steps}
    plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", SaveScenario(definition=definition))


def cli(plane: ControlPlane, *arguments: str, code: int = 0, db_url: str | None = None) -> Any:
    result = CliRunner().invoke(main, ["--home", plane.home, "--db-url", db_url or plane.db_url, *arguments])
    assert result.exit_code == code, result.output
    return result


def test_the_cli_hands_its_run_to_the_serving_control_plane(
    plane: ControlPlane, serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(plane, "steps", [values_step("First"), values_step("Second")])

    def here(*_: Any) -> None:
        raise AssertionError("the run was carried out by the CLI, not by the serving control plane")

    monkeypatch.setattr(cli_scenarios, "_run_here", here)
    ran = cli(plane, "--as", "admin", "--json", "scenario", "run", "ALPHA", "steps", "--wait")
    final = json.loads(ran.stdout)
    assert final["state"] == "succeeded" and [s["state"] for s in final["steps"]] == ["succeeded"] * 2
    assert final["requested_by"] == "admin"
    queued = cli(plane, "scenario", "run", "ALPHA", "steps")
    assert "queued run #" in queued.output
    run_id = int(queued.output.split("#")[1].split()[0])
    described = plane.runs.get_run(Caller.operator(), "ALPHA", "steps", run_id)
    assert described.requested_by.startswith("cli:")  # the operator, named by its OS account
    refused = cli(plane, "--as", "reader", "scenario", "run", "ALPHA", "steps", "--wait", code=1)
    assert refused.output.startswith("error: ") and len(refused.output.strip().splitlines()) == 1


def test_a_socket_of_another_store_is_not_used(
    plane: ControlPlane, serving: Serving, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    save(plane, "steps", [values_step("First")])
    here: list[tuple[Any, ...]] = []
    monkeypatch.setattr(cli_scenarios, "_run_here", lambda *arguments: here.append(arguments))
    cli(plane, "--as", "admin", "scenario", "run", "ALPHA", "steps", db_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert len(here) == 1, "the CLI must carry out itself a run of a store that socket does not serve"


def raw_get(path: Path, target: str) -> str:
    """The status line of a GET sent on the socket ``path`` without any header of Himalia's."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(path))
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return connection.recv(200).decode().splitlines()[0]


def test_only_the_control_plane_account_is_answered(
    plane: ControlPlane, serving: Serving, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer's OS account is the credential: a process of another account is refused, whatever
    it sends (here the control plane pretends to run as another uid than the test's)."""
    path = socket_path(plane.home)
    assert path is not None
    assert " 200 " in raw_get(path, "/himalia/api/v1/projects?limit=1")
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    assert " 401 " in raw_get(path, "/himalia/api/v1/projects?limit=1")


def test_a_followed_run_answers_when_it_changed(plane: ControlPlane, serving: Serving, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    save(plane, "blocked", [values_step("First"), blocker(gate), values_step("Last")])
    client = ServingPlane.find(plane.home, plane.db_url, "admin")
    assert client is not None
    base = scenario_path("ALPHA", "blocked")
    started = client.request("POST", f"{base}/run", {"parameters": {}, "variables": {}})
    path = f"{base}/runs/{started['id']}"
    current = client.request("GET", path)
    while not any(s["state"] == "running" and s["name"] == "Block" for s in current["steps"]):
        changed = client.request("GET", f"{path}?wait=30", headers={"If-None-Match": client.etag})
        assert changed is not None, "a step started or ended: the waiting GET must answer with it"
        current = changed
    assert client.request("GET", f"{path}?wait=0.3", headers={"If-None-Match": client.etag}) is None  # 304
    gate.touch()
    while current["state"] in ("queued", "running"):
        current = client.request("GET", f"{path}?wait=30", headers={"If-None-Match": client.etag}) or current
    assert current["state"] == "succeeded"
    assert client.request("GET", f"{path}?wait=30", headers={"If-None-Match": client.etag}) is None  # ended: at once
    with pytest.raises(Refused) as refused:
        client.request("GET", f"{path}?wait=61")
    assert refused.value.status == 400
    client.close()


def test_one_control_plane_per_socket_and_none_left_behind(plane: ControlPlane, serving: Serving) -> None:
    assert serving.socket is not None
    path = serving.socket.path
    second = Serving(plane)
    assert second.socket is None, "a second host must leave a socket that answers alone"
    second.stop()
    assert answers(path)
    serving.stop()
    assert not path.exists()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # what a killed host leaves: a socket nobody listens on
    stale.close()
    assert ServingPlane.find(plane.home, plane.db_url, None) is None
    replacing = Serving(plane)
    assert replacing.socket is not None and answers(path)
    replacing.stop()
