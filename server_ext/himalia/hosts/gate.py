"""Routes mounted before their handlers exist: a request that comes early waits for them.

The Jupyter extension starts the control plane after the server answers (importing the services and
opening the store take seconds that ``jupyter lab`` should not wait for). Its API's paths are held by
a ``RouteGate`` meanwhile: a request is read in full, kept, and handed to its handler once the gate
opens with the routes, or answered 503 once the gate is closed for good because the host could not
start. Only tornado's routing interfaces are used, so the handlers run exactly as if mounted at once.
"""

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler as JupyterAPIHandler
from tornado import httputil, web
from tornado.routing import Router, RuleRouter

#: The reply to a request that no one authenticated: the reason may name the server's files.
NOT_STARTED = "Himalia is not available in this server; the server's log says why."


class _HandlerRules(RuleRouter):
    """``(pattern, RequestHandler)`` rules served by ``application``, as its own handlers are."""

    def __init__(self, application: web.Application, rules: Sequence[tuple[str, type[web.RequestHandler]]]) -> None:
        self.application = application
        super().__init__(list(rules))

    def get_target_delegate(self, target: Any, request: httputil.HTTPServerRequest, **target_params: Any) -> Any:
        if isinstance(target, type) and issubclass(target, web.RequestHandler):
            return self.application.get_handler_delegate(request, target, **target_params)
        return super().get_target_delegate(target, request, **target_params)


class NotStartedHandler(JupyterAPIHandler):
    """503 on every method: the server's owner reads why, anyone else that Himalia is unavailable."""

    def initialize(self, reason: str) -> None:
        self.reason = reason

    async def prepare(self) -> None:  # type: ignore[override]  # as Jupyter's own APIHandler
        await super().prepare()  # who the Jupyter server authenticates, if anyone
        message = f"Himalia is off in this server: {self.reason}" if self.current_user else NOT_STARTED
        self.set_status(503)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": 503, "message": message, "field": None}))

    def check_xsrf_cookie(self) -> None:
        # The answer changes nothing; a Himalia token's request (no cookie) must read it too.
        if "Authorization" not in self.request.headers:
            super().check_xsrf_cookie()

    @allow_unauthenticated
    def get(self) -> None:
        """Never called: ``prepare`` answers."""

    head = post = put = patch = delete = options = get


class RouteGate(Router):
    """Holds the requests of its path until ``open`` gives it the routes, or ``close`` a reason."""

    def __init__(self, application: web.Application) -> None:
        self.application = application
        self._routes: _HandlerRules | None = None
        self._reason: str | None = None
        self._decided = asyncio.Event()
        self._held: set[asyncio.Task[None]] = set()

    def open(self, rules: Sequence[tuple[str, type[web.RequestHandler]]]) -> None:
        """Serve ``rules`` from now on, the held requests first (on the IOLoop's thread)."""
        self._routes = _HandlerRules(self.application, rules)
        self._decided.set()

    def close(self, reason: str) -> None:
        """Answer every request, held or to come, 503 for ``reason`` (on the IOLoop's thread)."""
        self._reason = reason
        self._decided.set()

    async def decided(self) -> None:
        """Until the gate was opened or closed."""
        await self._decided.wait()

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> httputil.HTTPMessageDelegate | None:
        if not self._decided.is_set():
            return _HeldRequest(self, request)
        return self.handler_for(request)

    def handler_for(self, request: httputil.HTTPServerRequest) -> httputil.HTTPMessageDelegate | None:
        """The delegate serving ``request`` once decided; None for a path no route matches (Jupyter's 404)."""
        if self._routes is None:
            return self.application.get_handler_delegate(request, NotStartedHandler, {"reason": self._reason})
        return self._routes.find_handler(request)

    def hold(self, waiting: Awaitable[None]) -> None:
        task = asyncio.ensure_future(waiting)
        self._held.add(task)  # a reference, so that the task is not collected while it waits
        task.add_done_callback(self._held.discard)


class _HeldRequest(httputil.HTTPMessageDelegate):
    """A request read in full while the gate is undecided, replayed to its handler afterwards."""

    def __init__(self, gate: RouteGate, request: httputil.HTTPServerRequest) -> None:
        self.gate, self.request = gate, request
        self.chunks: list[bytes] = []
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.closed = False

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> None:
        self.start_line, self.headers = start_line, headers

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        self.gate.hold(self._pass_on())

    def on_connection_close(self) -> None:
        self.closed = True
        if self.delegate is not None:
            self.delegate.on_connection_close()

    async def _pass_on(self) -> None:
        await self.gate.decided()
        if self.closed:
            return
        delegate = self.gate.handler_for(self.request)
        if delegate is None:
            delegate = self.gate.application.get_handler_delegate(request=self.request, target_class=web.ErrorHandler,
                                                                  target_kwargs={"status_code": 404})  # fmt: skip
        self.delegate = delegate
        started = delegate.headers_received(self.start_line, self.headers)
        if started is not None:
            await started
        for chunk in self.chunks:
            received = delegate.data_received(chunk)
            if received is not None:
                await received
        delegate.finish()
