"""Hub mode, in each single-user server: ``/himalia/api/*`` forwarded to the Himalia hub service.

The lab panels call the same URLs in both modes. Here the Jupyter server authenticates the
browser (JupyterHub's OAuth for this server) and the request goes on to the service with this
server's own ``$JUPYTERHUB_API_TOKEN``, so the service sees the server's owner and nobody else:
no header of the browser's can name another user. The server holds no database URL and no key.
"""

import os
from typing import Any

from jupyter_server.base.handlers import APIHandler as JupyterAPIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

#: Response headers that describe one hop, not the content; the rest are passed back as they are.
_HOP_HEADERS = {"connection", "content-length", "date", "server", "transfer-encoding", "keep-alive"}
SERVICE_URL = "himalia_service_url"


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
