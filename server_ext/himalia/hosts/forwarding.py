"""Hub mode, in each single-user server: ``/himalia/api/*`` forwarded to the Himalia hub service.

The lab panels call the same URLs in both modes. Here the Jupyter server authenticates the
browser (JupyterHub's OAuth for this server) and the request goes on to the service with this
server's own ``$JUPYTERHUB_API_TOKEN``, so the service sees the server's owner and nobody else:
no header of the browser's can name another user. The server holds no database URL and no key.

The service cannot see this person's files either, so a save of a scenario (and the preview of
what it would include) carries the project files beside its first notebook, read here as the
person, within this server's ``ProjectFiles`` limits; the service checks them against its own.
"""

import asyncio
import base64
import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler as JupyterAPIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from himalia.core.errors import HimaliaError
from himalia.scenarios.files import ProjectFiles
from himalia.wire.definitions import NotebookStep, ScenarioDefinition, load_scenario

#: Response headers that describe one hop, not the content; the rest are passed back as they are.
_HOP_HEADERS = {"connection", "content-length", "date", "server", "transfer-encoding", "keep-alive"}
SERVICE_URL = "himalia_service_url"
#: ``(root folder, ProjectFiles)``: where this server reads the project files a save carries.
PROJECT_FILES = "himalia_project_files"
#: The requests that carry project files: saving a scenario, and previewing what saving would include.
_SAVE = re.compile(r"^projects/[^/]+/scenarios(/[^/]+)?$")
_PREVIEW = re.compile(r"^projects/[^/]+/project-files/preview$")


def notebooks_of(path: str, payload: dict[str, Any]) -> tuple[list[str], list[str] | None] | None:
    """The notebooks (the first is the one the files sit beside) and ``files:`` globs a save's or a
    preview's body names. A body this cannot read goes on as it is: the service says what is wrong."""
    if _PREVIEW.match(path):
        notebook, globs = payload.get("notebook"), payload.get("files")
        return ([notebook], globs) if isinstance(notebook, str) else None
    try:
        if isinstance(payload.get("yaml"), str):
            definition = load_scenario(payload["yaml"])
        else:
            definition = ScenarioDefinition.model_validate(payload.get("definition"))
    except (HimaliaError, ValueError):
        return None
    notebooks = [step.notebook for step in definition.steps if isinstance(step, NotebookStep)]
    return (notebooks, definition.files) if notebooks else None


class ForwardingHandler(JupyterAPIHandler):
    """Any ``/himalia/api/v1/...`` request, replayed against the service as this server's owner."""

    async def _forward(self, path: str) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Sign in to this server first.")
        target = self.settings[SERVICE_URL].rstrip("/") + "/" + path
        if self.request.query:
            target += "?" + self.request.query
        headers = {"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"}
        for name in ("Content-Type", "Accept"):
            if name in self.request.headers:
                headers[name] = self.request.headers[name]
        method = self.request.method or "GET"
        body = self.request.body if method in {"POST", "PUT", "PATCH"} else None
        if body is not None and method in {"POST", "PUT"} and (_SAVE.match(path) or _PREVIEW.match(path)):
            try:
                body = await self._with_project_files(path, body)
            except HimaliaError as error:
                self.set_status(error.status)
                self.finish({"status": error.status, "message": error.message, "field": error.field})
                return
        request = HTTPRequest(
            target, method=method, headers=headers, body=body, follow_redirects=False, request_timeout=300
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            self.set_status(502)
            self.finish({"status": 502, "message": f"The Himalia service is unreachable ({response.error})."})
            return
        self.set_status(response.code, response.reason)
        for name, value in response.headers.get_all():
            if name.lower() not in _HOP_HEADERS:
                self.set_header(name, value)
        self.finish(response.body if response.code != 204 else None)

    async def _with_project_files(self, path: str, body: bytes) -> bytes:
        """``body`` with what only this server can read: the notebooks it names but does not carry,
        and ``project_files`` (path -> base64) beside its first notebook."""
        try:
            payload = json.loads(body)
        except ValueError:
            return body
        named = notebooks_of(path, payload) if isinstance(payload, dict) else None
        if named is None or "project_files" in payload:
            return body
        notebooks, globs = named
        reading: tuple[Path, ProjectFiles] = self.settings[PROJECT_FILES]
        root, project_files = reading
        if not _PREVIEW.match(path):
            carried = payload.setdefault("notebooks", {})
            if isinstance(carried, dict):
                for notebook in notebooks:
                    file = (root / notebook).resolve()
                    if notebook not in carried and file.is_relative_to(root.resolve()) and file.is_file():
                        with contextlib.suppress(ValueError):  # not JSON: the service names the notebook
                            carried[notebook] = json.loads(await asyncio.to_thread(file.read_bytes))
        files = await asyncio.to_thread(project_files.collect, root, notebooks[0], globs)
        if files:
            payload["project_files"] = {name: base64.b64encode(content).decode() for name, content in files.items()}
        return json.dumps(payload).encode()

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)

    async def get(self, path: str) -> None:
        await self._forward(path)

    async def post(self, path: str) -> None:
        await self._forward(path)

    async def put(self, path: str) -> None:
        await self._forward(path)

    async def patch(self, path: str) -> None:
        await self._forward(path)

    async def delete(self, path: str) -> None:
        await self._forward(path)
