"""Hub mode: ``himalia serve`` as a JupyterHub managed service at ``/services/himalia/``.

JupyterHub vouches for identities: people reach the service with HubOAuth (the hub's login
cookie, after an OAuth round trip; a change made with it carries the ``_xsrf`` token that the
administration application's page set, else HubOAuth ignores the cookie) and programs with a hub
token (a single-user server's ``$JUPYTERHUB_API_TOKEN`` forwarded by the lab extension, a
kernel's). The hub's users, groups and admin flags are mirrored into Himalia when someone is
first seen, when their hub model is older than ``user_refresh_seconds``, and completely every
``sync_interval`` seconds. The hub itself
calls the service with the service's own API token (which only the hub and the service know)
and acts as the service account ``jupyterhub``, holding ``manage_tiers``: it reads the tiers a
user may choose and admits servers on them, each time after asking the service to mirror that
person now (``POST /hub/people/{login}``), so that the spawn form follows the groups the identity
provider sent at this login, not the last sync.
"""

import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, check_scopes
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from himalia.api import api_prefix, routes
from himalia.api.base import (
    API_PREFIX_SETTING,
    CONTROL_PLANE,
    LOOPBACK,
    TRUSTED_PROXIES_SETTING,
    APIHandler,
    operation,
    route_pattern,
    trusted_networks,
)
from himalia.compute.tiers import load_tiers_file
from himalia.controlplane import ControlPlane
from himalia.core.config import environment_default
from himalia.core.errors import Forbidden, NotFound, Unauthenticated
from himalia.core.permissions import GlobalPermission
from himalia.core.private_files import create_private_file, ensure_private_folder, restrict_to_owner
from himalia.hosts.admin import ADMIN_PAGE_POLICY, admin_page, static_route
from himalia.identity.caller import Caller
from himalia.identity.users import HubPerson

HUB_SERVICE = "himalia_hub_service"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class HubService(LoggingConfigurable):
    """The link between the control plane and the JupyterHub that manages it."""

    admin_group = Unicode(
        "administrators",
        config=True,
        help="The Himalia group (holding 'admin') whose members are the hub's admins, kept in step.",
    )
    service_account = Unicode(
        "jupyterhub", config=True, help="The service account the hub acts as (it holds 'manage_tiers')."
    )
    sync_interval = Float(
        300, min=0.1, config=True, help="Seconds between complete syncs of the hub's users and groups."
    )
    user_refresh_seconds = Float(
        60, config=True, help="A person's groups and admin flag are re-read from the hub when older than this."
    )
    tiers_file = Unicode(
        config=True,
        help="""Tiers created when the store has none (hub_config/tiers.yaml); later changes live in
        the store. Defaults to $HIMALIA_TIERS_FILE.""",
    )

    _default_tiers_file = environment_default("tiers_file", "HIMALIA_TIERS_FILE", "")

    cookie_secret = Unicode(
        config=True,
        help="""Key signing the service's login cookie and XSRF token, so that both outlive a restart
        and hold in every instance. Defaults to $HIMALIA_HUB_COOKIE_SECRET, else `hub-cookie.secret`
        in the Himalia home (created on first start, mode 0600).""",
    )

    def _cookie_secret_file(self) -> str:
        path = Path(self.control_plane.home) / "hub-cookie.secret"
        ensure_private_folder(path.parent)
        if not create_private_file(path, secrets.token_hex(32) + "\n"):
            restrict_to_owner(path)
        return path.read_text().strip()

    _default_cookie_secret = environment_default("cookie_secret", "HIMALIA_HUB_COOKIE_SECRET", _cookie_secret_file)

    def __init__(self, control_plane: ControlPlane, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control_plane = control_plane
        # The instance HubOAuthenticated handlers (the OAuth callback, the landing page) use too.
        self.auth = HubOAuth.instance(parent=self, cache_max_age=60)
        self._seen: dict[str, float] = {}
        self._http = AsyncHTTPClient()

    def start(self) -> None:
        plane = self.control_plane
        self.route_run_links()
        plane.users.ensure_service_account(
            self.service_account,
            "hub-services",
            [GlobalPermission.MANAGE_TIERS],
            "the account JupyterHub acts as to offer tiers and admit servers on them",
        )
        if self.tiers_file:
            operator = Caller.operator("himalia-service", client_address="local")
            seeded = plane.tiers.seed(operator, load_tiers_file(Path(self.tiers_file)))
            if seeded:
                self.log.info("Seeded the tiers %s from %s", ", ".join(seeded), self.tiers_file)
        self.log.info("Mirroring the hub's users and groups every %g s", self.sync_interval)
        self._periodic = PeriodicCallback(self.sync_all, self.sync_interval * 1000, jitter=0.1)
        self._periodic.start()

    def route_run_links(self) -> None:
        """Links in reports go through the hub, which logs people in and sends them on to their own
        lab (``user-redirect``); the hub's public URL comes from its environment unless configured."""
        plane = self.control_plane
        plane.lab_path = "hub/user-redirect/lab"
        if not plane.public_url:
            public_hub_url = os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "")  # https://hub.example.com/hub/
            plane.public_url = public_hub_url.rstrip("/").removesuffix("/hub") + "/" if public_hub_url else ""
        if not plane.public_url:
            self.log.warning(
                "Reports carry no link to their run: set c.ControlPlane.public_url (or $HIMALIA_PUBLIC_URL, "
                "or the hub's c.JupyterHub.public_url) to the address people open the hub at"
            )

    def stop(self) -> None:
        self._periodic.stop()

    async def hub_api(self, path: str) -> Any:
        """GET the hub's REST API with the service's own token."""
        headers = {"Authorization": f"token {self.auth.api_token}", "Accept": "application/jupyterhub-pagination+json"}
        request = HTTPRequest(self.auth.api_url.rstrip("/") + path, headers=headers, request_timeout=30)
        response = await self._http.fetch(request)
        return json.loads(response.body)

    @staticmethod
    def _person(model: dict[str, Any]) -> HubPerson:
        return HubPerson(model["name"], bool(model.get("admin")), frozenset(model.get("groups") or []))

    async def sync_all(self) -> None:
        """Mirror every hub user (a failure is logged and retried at the next interval)."""
        try:
            people, offset = [], 0
            while True:
                page = await self.hub_api(f"/users?offset={offset}&limit=200")
                people += [self._person(model) for model in page["items"]]
                if not page["_pagination"].get("next"):
                    break
                offset += len(page["items"])
            users = self.control_plane.users
            changes = await self.control_plane.call(users.sync_from_hub, people, self.admin_group, True)
            now = time.monotonic()
            self._seen = {person.login: now for person in people}
            for change in changes:
                self.log.info("Hub sync: %s", change)
        except Exception:
            self.log.exception("Syncing users and groups from the hub failed")

    def is_hub(self, token: str | None) -> bool:
        """Whether a request carries the service's own token: only the hub and this service hold it."""
        return token is not None and hmac.compare_digest(token.encode(), self.auth.api_token.encode())

    async def mirror(self, login: str) -> None:
        """Re-read one person from the hub and mirror their groups and admin flag now.

        The hub's groups are those the identity provider sent at the person's latest login
        (oauthenticator's ``manage_groups``), so what Himalia then decides (the tiers of the spawn
        form, admitting a server) follows that login, not the last sync.
        """
        try:
            model = await self.hub_api(f"/users/{quote(login, safe='')}")
        except HTTPClientError as error:
            if error.code == 404:
                raise NotFound(f"The hub has no user '{login}'.", field="login") from None
            raise
        await self.control_plane.call(self.control_plane.users.sync_from_hub, [self._person(model)], self.admin_group)
        self._seen[login] = time.monotonic()

    async def caller_for(self, model: dict[str, Any], client_address: str) -> Caller:
        """The Himalia caller of a hub user model, synced first when unseen or stale."""
        login, plane = model["name"], self.control_plane
        if time.monotonic() - self._seen.get(login, float("-inf")) > self.user_refresh_seconds:
            await self.mirror(login)
        return await plane.call(plane.users.sign_in, login, client_address)


class _HubHosted(APIHandler):
    """Identity from JupyterHub: the hub's own token, a hub token or the HubOAuth cookie."""

    @property
    def hub(self) -> HubService:
        return self.settings[HUB_SERVICE]

    async def host_caller(self) -> Caller | None:
        hub = self.hub
        token = self.bearer_token()
        if hub.is_hub(token):
            return await self.call(self.control_plane.users.caller_for, hub.service_account, "hub")
        model = await hub.auth.get_user(self, sync=False)
        if token is not None and not (
            getattr(self, "_token_authenticated", False) and hub.auth.get_token(self, in_cookie=False) == token
        ):
            # HubAuth falls back to the login cookie when the token is wrong; a wrong token is 401 here.
            self.log_denied("invalid hub token")
            raise Unauthenticated("The token in the Authorization header is not valid.")
        if not model:
            if token is None and self.request.method not in SAFE_METHODS and self.get_cookie(hub.auth.cookie_name):
                # HubOAuth accepts the login cookie for a change only with its XSRF token, as a
                # forged cross-site request cannot have it (the application's pages send it).
                raise Forbidden(
                    "A change made with the hub's login cookie needs its XSRF token (the X-XSRFToken header, "
                    "from the _xsrf cookie the administration page sets); programs send a token instead."
                )
            return None
        if model.get("kind") != "user":
            raise Forbidden(f"The hub service '{model.get('name')}' has no Himalia identity; use a Himalia token.")
        if not check_scopes(hub.auth.access_scopes, set(model.get("scopes", []))):
            raise Forbidden(
                f"{model['name']}'s token lacks access to this service ({', '.join(hub.auth.access_scopes)})."
            )
        return await hub.caller_for(model, self.client_address)


def hub_hosted(handler: type[APIHandler]) -> type[APIHandler]:
    return type(handler.__name__, (_HubHosted, handler), {})


class HubPersonHandler(_HubHosted):
    """``POST /hub/people/{login}``: the hub asks for a person to be mirrored before it asks about them."""

    route = "/hub/people/{login}"

    @operation("Mirror a person's groups and admin flag from the hub now (the hub; administrators).")
    async def post(self, login: str) -> None:
        if not (self.hub.is_hub(self.bearer_token()) or self.caller.is_admin):
            raise Forbidden("Mirroring a person from the hub is for the hub and administrators.")
        await self.hub.mirror(login)


class AdminHandler(HubOAuthenticated, web.RequestHandler):
    """``/services/himalia/admin/``: the administration application, after the hub's login."""

    async def get(self) -> None:
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            self.redirect(self.get_login_url())  # the OAuth round trip, with its state cookie
            return
        self.xsrf_token  # noqa: B018  (sets the _xsrf cookie at the service's prefix, which changes carry)
        prefix = self.hub_auth.base_url
        hub_home = os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/home"
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", ADMIN_PAGE_POLICY)
        self.finish(admin_page(prefix, prefix + "admin/", hub_home, "Back to the hub"))


class LandingHandler(web.RequestHandler):
    """``/services/himalia/``, where the hub's Services menu points: the administration application."""

    def get(self) -> None:
        self.redirect(self.request.path.rstrip("/") + "/admin/")


class FrameProtection(web.OutputTransform):
    """On every response (pages, files, the API, errors): no other site may frame it, and no
    browser guesses a content type other than the one sent."""

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        headers.setdefault("Content-Security-Policy", "frame-ancestors 'self'")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        return status_code, headers, chunk


def make_hub_application(control_plane: ControlPlane, hub: HubService) -> web.Application:
    prefix = hub.auth.base_url  # $JUPYTERHUB_SERVICE_PREFIX, e.g. /services/himalia/
    handlers: list[Any] = routes(prefix, adapt=hub_hosted)
    handlers.append((route_pattern(api_prefix(prefix), HubPersonHandler.route), HubPersonHandler))
    handlers += [
        (prefix.rstrip("/") + "/oauth_callback", HubOAuthCallbackHandler),
        (prefix + "admin/?", AdminHandler),
        static_route(prefix + "admin/"),
        (prefix.rstrip("/") + "/?", LandingHandler),
    ]
    settings = {
        CONTROL_PLANE: control_plane,
        HUB_SERVICE: hub,
        API_PREFIX_SETTING: api_prefix(prefix),
        # The hub's proxy forwards every request; unless configured, it runs on this machine.
        TRUSTED_PROXIES_SETTING: trusted_networks(
            LOOPBACK if control_plane.trusted_proxies is None else control_plane.trusted_proxies
        ),
        "cookie_secret": hub.cookie_secret,
    }
    application = web.Application(handlers, **settings)  # type: ignore[arg-type]
    application.add_transform(FrameProtection)
    return application
