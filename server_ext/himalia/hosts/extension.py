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
"""

import getpass
import os
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler as JupyterAPIHandler
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Bool, TraitError, Unicode, default

from himalia.api import API_PREFIX, api_prefix, routes
from himalia.api.base import API_PREFIX_SETTING, CONTROL_PLANE, APIHandler
from himalia.controlplane import ControlPlane
from himalia.core.config import ConfigFileError, environment_default, load_config_files
from himalia.core.errors import HimaliaError, Unauthenticated
from himalia.data.reading import DatasetReading
from himalia.execution.accounts import UserIsolation
from himalia.execution.local import LocalExecutor
from himalia.hosts.admin import ADMIN_PATH, admin_page, static_route
from himalia.hosts.forwarding import PROJECT_FILES, SERVICE_URL, ForwardingHandler
from himalia.hub.setup import SERVICE
from himalia.identity.caller import Caller
from himalia.scenarios.files import ProjectFiles
from himalia.scenarios.reporting import Mailer, WebhookSettings

LOCAL_USER = "himalia_local_user"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


class _JupyterHosted(APIHandler):
    """Identity from the Jupyter server, unless the request carries a Himalia token."""

    async def host_caller(self) -> Caller | None:
        token = self.bearer_token()
        if token is not None and not self._jupyter_token_is(token):
            # Jupyter would fall back to its login cookie; the header's claim alone decides here.
            self.log_denied("invalid token")
            raise Unauthenticated("The token in the Authorization header is not valid.")
        if self.current_user is None:
            return None
        return await self.call(self.control_plane.users.sign_in, self.settings[LOCAL_USER], self.client_address)

    def _jupyter_token_is(self, token: str) -> bool:
        """Whether the Jupyter server authenticated this request by ``token``, this very header's."""
        jupyter: Any = self  # a JupyterHandler, once composed by ``jupyter_hosted``
        return bool(jupyter.token_authenticated) and jupyter.identity_provider.get_token(jupyter) == token

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # Jupyter's APIHandler.finish forces JSON; reports, logs and exports set their own type.
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)

    def check_xsrf_cookie(self) -> None:
        # A request with an Authorization header cannot be forged cross-site, and it authenticates
        # by that header or not at all (401, see ``authenticate``): only cookie requests are checked.
        if "Authorization" not in self.request.headers:
            super().check_xsrf_cookie()


def jupyter_hosted(handler: type[APIHandler]) -> type[APIHandler]:
    """``handler`` served by jupyter-server: Jupyter's handler base, Himalia's own authentication."""
    methods: dict[str, Any] = {
        name: allow_unauthenticated(getattr(handler, name)) for name in HTTP_METHODS if name in vars(handler)
    }
    return type(handler.__name__, (_JupyterHosted, handler, JupyterAPIHandler), methods)


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
        hub_base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        self.redirect(url_path_join(hub_base_url, "services", SERVICE, "admin/"))


class HimaliaExtension(ExtensionApp):
    name = "himalia"
    description = "Himalia control plane, in-process (standalone mode)."
    # KubernetesExecutor is not listed: its module imports the kubernetes client, an optional extra.
    classes = [ControlPlane, LocalExecutor, UserIsolation, Mailer, WebhookSettings, ProjectFiles, DatasetReading]

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

    def initialize_settings(self) -> None:
        if self.service_url:
            self.log.info("Himalia: forwarding %s to the hub service at %s", API_PREFIX, self.service_url)
            self.settings[SERVICE_URL] = self.service_url
            # The service cannot see this person's files: saves read them here (see forwarding).
            root = self.serverapp.root_dir if self.serverapp else os.getcwd()
            self.settings[PROJECT_FILES] = (Path(root), ProjectFiles(parent=self))
            return
        if self.unavailable:
            return
        try:
            self.control_plane = plane = ControlPlane(parent=self, log=self.log)
        except TraitError as error:
            self.log.error("Himalia is off in this server: configuration: %s", error)
            self.unavailable = f"configuration: {error}"
            return
        if self.serverapp is not None:
            if not plane.notebook_root:  # the Jupyter root: its files are this server's user's own
                plane.notebook_root = self.serverapp.root_dir
            plane.api_url = url_path_join(self.serverapp.connection_url, API_PREFIX)
            if not plane.public_url:  # links in reports open this lab (after its login)
                plane.public_url = self.serverapp.connection_url
        try:
            plane.start()
        except HimaliaError as error:
            # Jupyter would log a failed extension with its traceback; the sentence says it all.
            self.log.error("Himalia is off in this server: %s", error.message)
            self.unavailable = error.message
            return
        if self.local_user_admin:
            plane.users.ensure_local_admin(self.local_user)
        if plane.run_scenarios:
            plane.start_engine()
        self.settings.update(
            {
                CONTROL_PLANE: self.control_plane,
                LOCAL_USER: self.local_user,
                API_PREFIX_SETTING: api_prefix(self.serverapp.base_url if self.serverapp else "/"),
            }
        )

    def initialize_handlers(self) -> None:
        # ExtensionApp prefixes base_url itself.
        if self.service_url:
            self.handlers.append((API_PREFIX + "/(.*)", ForwardingHandler))
            self.handlers.append(("/" + ADMIN_PATH + "?", AdminRedirectHandler))
        elif not self.unavailable:
            self.handlers.extend(routes("/", adapt=jupyter_hosted))
            self.handlers += [("/" + ADMIN_PATH + "?", AdminPageHandler), static_route("/" + ADMIN_PATH)]

    async def stop_extension(self) -> None:
        if not self.service_url and not self.unavailable:
            self.control_plane.stop()
