"""Hub mode: a person's server forwards the API to the service, and carries their project files.

The service has no notebook folder (it cannot see anyone's files), so a save from the lab in hub
mode carries the files beside its first notebook, read by the person's own server: a scheduled
notebook there sees its sibling module and CSV as it does in a standalone lab.
"""

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tornado.httpclient import HTTPResponse

from himalia.controlplane import ControlPlane
from himalia.store.orm import FileTree, Scenario

from ..conftest import LiveAPI, World
from ..scenarios.conftest import notebook

SCORE = notebook("from utils import summarize\nprint(summarize([1, 2]))", parameters="x: int = 1")
STEP = {"name": "Score", "type": "notebook", "notebook": "work/score.ipynb"}


@pytest.fixture
def jp_server_config(api: LiveAPI, jp_root_dir: Path, monkeypatch: pytest.MonkeyPatch, world: World) -> dict[str, Any]:
    """A person's server in hub mode: the extension forwards to the service as the server's owner."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", world.tokens["admin"])
    work = jp_root_dir / "work"
    work.mkdir()
    (work / "score.ipynb").write_text(json.dumps(SCORE))
    (work / "utils.py").write_text("def summarize(values):\n    return sum(values)\n")
    (work / "sales.csv").write_text("day,amount\n1,10\n")
    (work / ".env").write_text("TOKEN=kept out by .himaliaignore\n")
    (work / ".himaliaignore").write_text(".env\n")
    return {
        "ServerApp": {"jpserver_extensions": {"himalia": True}},
        "HimaliaExtension": {"service_url": api.base},
    }


def send(jp_fetch: Any, loop: asyncio.AbstractEventLoop, method: str, path: str, payload: Any) -> HTTPResponse:
    request = jp_fetch("himalia", "api", "v1", *path.split("/"), method=method, body=json.dumps(payload))
    return loop.run_until_complete(request)


def tree_of(plane: ControlPlane, scenario: str) -> list[str]:
    with plane.db.read() as session:
        row = session.scalar(select(Scenario).where(Scenario.slug == scenario))
        assert row is not None and row.file_tree is not None
        return [path for path, _, _ in session.get_one(FileTree, row.file_tree).entries]


def test_a_save_through_the_persons_server_carries_the_files_beside_its_notebook(
    jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, plane: ControlPlane
) -> None:
    assert plane.notebook_root == ""  # the service reads nothing of its own disk
    definition = {"id": "hubfiles", "name": "Hub files", "steps": [STEP]}
    saved = send(jp_fetch, jp_asyncio_loop, "PUT", "projects/ALPHA/scenarios/hubfiles", {"definition": definition})
    described = json.loads(saved.body)
    assert described["files"]["files"] == 4, described  # .himaliaignore, sales.csv, score.ipynb, utils.py
    assert tree_of(plane, "hubfiles") == [".himaliaignore", "sales.csv", "score.ipynb", "utils.py"]

    preview = send(
        jp_fetch, jp_asyncio_loop, "POST", "projects/ALPHA/project-files/preview", {"notebook": "work/score.ipynb"}
    )
    assert json.loads(preview.body)["paths"] == [".himaliaignore", "sales.csv", "score.ipynb", "utils.py"]


def test_files_a_save_carries_are_held_to_the_services_limits(api: LiveAPI, plane: ControlPlane) -> None:
    """Whoever sends files themselves (any API client) meets the same limits as files read on disk."""
    plane.scenarios.project_files.max_files = 2
    content = {name: base64.b64encode(b"x").decode() for name in ("a.py", "b.py", "c.py")}
    definition = {"id": "sent", "name": "Sent", "steps": [STEP]}
    body = {"definition": definition, "notebooks": {"work/score.ipynb": SCORE}, "project_files": content}
    reply = api.request("PUT", "/projects/ALPHA/scenarios/sent", json=body)
    assert reply.status_code == 400 and reply.json()["field"] == "project_files", reply.text
    assert "ProjectFiles.max_files" in reply.json()["message"]
    escaping = {**body, "project_files": {"../outside.py": base64.b64encode(b"x").decode()}}
    reply = api.request("PUT", "/projects/ALPHA/scenarios/sent", json=escaping)
    assert reply.status_code == 400 and "project_files" in (reply.json()["field"] or ""), reply.text
    plane.scenarios.project_files.max_files = 10
    reply = api.request("PUT", "/projects/ALPHA/scenarios/sent", json=body)
    assert reply.status_code == 200 and reply.json()["files"]["files"] == 3, reply.text
