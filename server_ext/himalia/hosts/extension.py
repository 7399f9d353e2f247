"""The Himalia server extension, in one of two modes.

Standalone: the control plane in-process in a plain ``jupyter server`` / ``jupyter lab``.
Whoever the Jupyter server authenticates (its token or its login cookie) is the server's owner
and acts as ``local_user``, by default the platform's administrator; requests carrying a Himalia
token act as that token's user. Configure the store with ``c.ControlPlane.*``, in the server's
configuration or in ``himalia_config.py`` (read as every Himalia host reads it, see
``himalia.core.config``; the server's own configuration wins).

Under JupyterHub (``service_url`` set, as the hub's spawner does): no control plane here, the
API is forwarded to the Himalia hub service as the server's owner (see ``forwarding``), and the
administration application's address sends the browser on to the service's.

Either starts after the server answers, in a thread: importing the services and opening the store
take seconds that ``jupyter lab`` does not wait for. Until then a ``RouteGate`` holds the API's
requests, and hands them on once the API is served; if it cannot start, each is answered 503.
"""

import asyncio
import getpass
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.routing import PathMatches, Rule
from traitlets import Bool, TraitError, Unicode, default

from himalia.api import API_PREFIX, api_prefix
from himalia.core.config import ConfigFileError, environment_default, load_config_files
from himalia.core.errors import HimaliaError
from himalia.hosts.admin import ADMIN_PATH, admin_page, static_route
from himalia.hosts.gate import RouteGate

if TYPE_CHECKING:
    from himalia.controlplane import ControlPlane

Routes = Sequence[tuple[str, type[web.RequestHandler]]]


class AdminPageHandler(JupyterHandler):
    """The administration application, for whoever the Jupyter server authenticates (else its login page)."""

    @web.authenticated
    def get(self) -> None:
        self.xsrf_token  # noqa: B018  (sets the _xsrf cookie that the application's changes carry)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        app_url = url_path_join(self.base_url, ADMIN_PATH)
        self.finish(admin_page(self.base_url, app_url, url_path_join(self.base_url, "lab"), "Back to JupyterLab"))


class AdminRedirectHandler(JupyterHandler):
    """In a hub user's server the application is the hub service's: the lab links here in both hosts."""

    @allow_unauthenticated
    def get(self) -> None:
        from himalia.hub.setup import SERVICE

        hub_base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.redirect(url_path_join(hub_base_url, "services", SERVICE, "admin/"))


class HimaliaExtension(ExtensionApp):
    name = "himalia"
    description = "Himalia control plane, in-process (standalone mode)."
    # The configurables (c.ControlPlane.*, c.LocalExecutor.*, c.Mailer.*, ...) are not listed in
    # ``classes``: listing them would import the services before the server answers. Each reads
    # its section of this server's configuration when the control plane creates it.

    local_user = Unicode(
        config=True,
        help="""The Himalia login of whoever the Jupyter server authenticates. It is created on
        start as a member of the `administrators` group. Defaults to the operating-system user.""",
    )

    local_user_admin = Bool(
        True,
        config=True,
        help="""Make `local_user` a member of `administrators` on start. Turn it off to work in the
        lab as an existing user with only that user's rights, e.g. a demo reader:
        `jupyter lab --HimaliaExtension.local_user=carol --HimaliaExtension.local_user_admin=False`.""",
    )

    service_url = Unicode(
        config=True,
        help="""The Himalia hub service's API (…/himalia/api/v1). When set, this server forwards the
        API to it as its owner instead of running a control plane. Defaults to $HIMALIA_SERVICE_URL,
        which the hub's spawner sets.""",
    )

    _default_service_url = environment_default("service_url", "HIMALIA_SERVICE_URL", "")

    @default("local_user")
    def _default_local_user(self) -> str:
        return getpass.getuser().lower()

    #: Why the control plane could not start here (its API is then not served), if it could not.
    unavailable: str | None = None

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        """Jupyter's files for this extension, then ``himalia_config.*``; the server's config is merged after."""
        super().load_config_file(*args, **kwargs)
        try:
            loaded = load_config_files()
        except ConfigFileError as error:
            self.log.error("Himalia is off in this server: %s", error.message)
            self.unavailable = error.message
            return
        self.update_config(loaded.config)

    #: Holds the API's requests until the control plane (or, under the hub, the forwarding) is ready.
    gate: RouteGate | None = None
    control_plane: "ControlPlane | None" = None

    def initialize_handlers(self) -> None:
        # ExtensionApp prefixes base_url itself; the gate is mounted below the full prefix.
        if self.service_url:
            self.handlers.append(("/" + ADMIN_PATH + "?", AdminRedirectHandler))
        elif not self.unavailable:
            self.handlers += [("/" + ADMIN_PATH + "?", AdminPageHandler), static_route("/" + ADMIN_PATH)]
        if (self.unavailable and not self.service_url) or self.serverapp is None:
            return
        web_app = self.serverapp.web_app
        self.gate = RouteGate(web_app)
        rule = Rule(PathMatches(api_prefix(web_app.settings["base_url"]) + "/.*"), self.gate)
        # Tornado's own add_handlers: jupyter-server's checks a handler class's methods for an
        # authentication decorator, and the gate is a router (``jupyter_hosted`` decorates its handlers).
        web.Application.add_handlers(web_app, ".*$", [rule])
        # Runs once the IOLoop does, i.e. once the server listens: the start is off its own path.
        self.serverapp.io_loop.add_callback(self._start)

    async def _start(self) -> None:
        """The control plane (or the forwarding) started in a thread, then the gate opened with its routes."""
        assert self.gate is not None and self.serverapp is not None
        settings = self.serverapp.web_app.settings
        start = self._forward if self.service_url else self._start_control_plane
        try:
            routes, ready_settings = await asyncio.to_thread(start, settings["base_url"])
        except TraitError as error:
            self._refuse(f"configuration: {error}")
        except HimaliaError as error:  # the sentence says it all, Jupyter would add a traceback
            self._refuse(error.message)
        except Exception as error:
            self.log.exception("Himalia could not start")
            self._refuse(f"{type(error).__name__}: {error}")
        else:
            settings.update(ready_settings)
            self.gate.open(routes)

    def _refuse(self, reason: str) -> None:
        """Logged once; every API request is then answered 503 saying why (to the server's owner)."""
        assert self.gate is not None
        self.log.error("Himalia is off in this server: %s", reason)
        self.unavailable = reason
        self.gate.close(reason)

    def _forward(self, base_url: str) -> tuple[Routes, dict[str, Any]]:
        from himalia.hosts.forwarding import PROJECT_FILES, SERVICE_URL, ForwardingHandler
        from himalia.scenarios.files import ProjectFiles

        self.log.info("Himalia: forwarding %s to the hub service at %s", API_PREFIX, self.service_url)
        # The service cannot see this person's files: saves read them here (see forwarding).
        root = self.serverapp.root_dir if self.serverapp else os.getcwd()
        settings = {SERVICE_URL: self.service_url, PROJECT_FILES: (Path(root), ProjectFiles(parent=self))}
        return [(api_prefix(base_url) + "/(.*)", ForwardingHandler)], settings

    def _start_control_plane(self, base_url: str) -> tuple[Routes, dict[str, Any]]:
        """Configure and start the control plane, in a thread of its own: imports, store, services, engine."""
        from himalia.api.base import API_PREFIX_SETTING, CONTROL_PLANE
        from himalia.controlplane import ControlPlane
        from himalia.hosts.jupyter_routes import LOCAL_USER, jupyter_routes

        plane = ControlPlane(parent=self, log=self.log)
        if self.serverapp is not None:
            if not plane.notebook_root:  # the Jupyter root: its files are this server's user's own
                plane.notebook_root = self.serverapp.root_dir
            plane.api_url = url_path_join(self.serverapp.connection_url, API_PREFIX)
            if not plane.public_url:  # links in reports open this lab (after its login)
                plane.public_url = self.serverapp.connection_url
        plane.start()
        self.control_plane = plane
        if self.local_user_admin:
            plane.users.ensure_local_admin(self.local_user)
        if plane.run_scenarios:
            plane.start_engine()
        settings = {CONTROL_PLANE: plane, LOCAL_USER: self.local_user, API_PREFIX_SETTING: api_prefix(base_url)}
        return jupyter_routes(base_url), settings

    async def started(self) -> None:
        """Until the API is served here, or refused for good (``unavailable`` then says why)."""
        if self.gate is not None:
            await self.gate.decided()

    async def stop_extension(self) -> None:
        await self.started()
        if self.control_plane is not None:
            self.control_plane.stop()
