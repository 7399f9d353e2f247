"""A hub user whose login is a Himalia service account's (``jupyterhub``, the hub's own) never
becomes it: the sync leaves service accounts alone, the hub's cookie and user tokens refuse them,
mirroring a person is for the hub's own token and administrators, and the account the hub acts as
cannot be deactivated while the hub depends on it."""

import asyncio
import logging
from collections.abc import Iterator

import pytest
import requests
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.web import create_signed_value

from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict, Forbidden
from himalia.core.permissions import GlobalPermission
from himalia.identity.caller import Caller
from himalia.identity.users import HubPerson, find_user
from himalia.wire.identity import CreateUser, UpdateUser

from ..security.test_http_edge import HUB_SERVICE_TOKEN, HubModeServer

OPERATOR = Caller.operator("test")
HUB_ROLE = "the account JupyterHub acts as to offer tiers and admit servers on them"
#: The configured account the hub acts as, and one made with ``himalia user add --service``.
SERVICE_ACCOUNTS = ["jupyterhub", "ci-bot"]


def make_service_accounts(plane: ControlPlane) -> None:
    plane.users.ensure_service_account("jupyterhub", "hub-services", [GlobalPermission.MANAGE_TIERS], HUB_ROLE)
    plane.users.create_user(OPERATOR, CreateUser(login="ci-bot", kind="service"))


@pytest.fixture
def accounts(plane: ControlPlane) -> ControlPlane:
    make_service_accounts(plane)
    return plane


def account(plane: ControlPlane, login: str) -> tuple[str, str, bool, set[str]]:
    user = plane.users.get_user(OPERATOR, login)
    return user.kind, user.source, user.active, set(user.groups)


# -- the sync ------------------------------------------------------------------------------------


@pytest.mark.parametrize("login", SERVICE_ACCOUNTS)
def test_the_sync_leaves_a_service_account_alone_and_says_so(
    accounts: ControlPlane, login: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = account(accounts, login)
    with caplog.at_level(logging.WARNING):
        changes = accounts.users.sync_from_hub([HubPerson(login, True, frozenset({"staff"}))], "administrators")
    assert not [change for change in changes if login in change], changes
    assert account(accounts, login) == before and before[:3] == ("service", "local", True)
    assert f"Not syncing the hub user '{login}': a Himalia service account has that login" in caplog.text
    # Gone from the hub (it never was there): the complete sync does not deactivate it.
    accounts.users.sync_from_hub([], "administrators", complete=True)
    assert account(accounts, login) == before
    assert accounts.users.caller_for(login).kind == "service"


def test_a_service_account_the_sync_took_over_before_is_given_back(accounts: ControlPlane) -> None:
    """An account an older version mirrored a hub person onto (its source 'hub', their groups) is
    not deactivated when they leave, and the next start takes their groups away."""
    with accounts.db.write() as session:
        find_user(session, "jupyterhub").source = "hub"
    accounts.users.sync_from_hub([HubPerson("someone", True, frozenset({"staff"}))], "administrators")
    with accounts.db.write() as session:
        taken = find_user(session, "jupyterhub")
        taken.groups += list(find_user(session, "someone").groups)  # staff, administrators
    accounts.users.sync_from_hub([], "administrators", complete=True)
    assert accounts.users.get_user(OPERATOR, "jupyterhub").active
    accounts.users.ensure_service_account("jupyterhub", "hub-services", [GlobalPermission.MANAGE_TIERS], HUB_ROLE)
    assert account(accounts, "jupyterhub") == ("service", "local", True, {"hub-services"})
    assert not accounts.users.caller_for("jupyterhub").is_admin


@pytest.mark.parametrize("login", SERVICE_ACCOUNTS)
def test_a_host_never_signs_a_person_in_as_a_service_account(accounts: ControlPlane, login: str) -> None:
    with pytest.raises(Forbidden, match=f"'{login}' is a Himalia service account"):
        accounts.users.sign_in(login, "10.0.0.1")


def test_a_person_cannot_be_made_the_hub_service_account(plane: ControlPlane) -> None:
    plane.users.sync_from_hub([HubPerson("hubbot", False, frozenset())], "administrators")
    with pytest.raises(Conflict, match="'hubbot' is a person's login here"):
        plane.users.ensure_service_account("hubbot", "hub-services", [GlobalPermission.MANAGE_TIERS], HUB_ROLE)
    assert plane.users.get_user(OPERATOR, "hubbot").kind == "user"
    assert "hub-services" not in plane.users.get_user(OPERATOR, "hubbot").groups


# -- deactivation --------------------------------------------------------------------------------


def test_the_account_the_hub_acts_as_cannot_be_deactivated(accounts: ControlPlane) -> None:
    admin = accounts.users.caller_for("admin")
    preview = accounts.users.deactivation(admin, "jupyterhub")
    assert preview.refusal == f"'jupyterhub' is {HUB_ROLE}; deactivating it would stop that, so it stays active."
    with pytest.raises(Conflict, match="so it stays active") as refused:
        accounts.users.update_user(admin, "jupyterhub", UpdateUser(active=False))
    assert refused.value.field == "active"
    assert accounts.users.get_user(admin, "jupyterhub").active
    # Another service account is the administrators' to deactivate.
    assert accounts.users.deactivation(admin, "ci-bot").refusal is None
    assert not accounts.users.update_user(admin, "ci-bot", UpdateUser(active=False)).active


# -- over HTTP -----------------------------------------------------------------------------------

#: Hub user tokens and the users they belong to, as the fake hub answers for them.
HUB_USERS = {
    "token-of-the-hub-user-jupyterhub": {"name": "jupyterhub", "admin": True},
    "token-of-the-hub-user-ci-bot": {"name": "ci-bot", "admin": True},
    "token-of-a-hub-administrator": {"name": "hubadmin", "admin": True},
    "token-of-a-hub-person": {"name": "hubperson", "admin": False},
}


def hub_model(name: str, admin: bool) -> dict[str, object]:
    return {"kind": "user", "name": name, "admin": admin, "groups": [], "scopes": ["access:services"]}


class FakeHub(web.RequestHandler):
    """JupyterHub's REST API: who holds a user token (``/user``), a user (with the service's token)."""

    def get(self, path: str) -> None:
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        by_name = {user["name"]: user for user in HUB_USERS.values()}
        if path == "user" and token in HUB_USERS:
            self.finish(hub_model(**HUB_USERS[token]))  # type: ignore[arg-type]
        elif path.startswith("users/") and token == HUB_SERVICE_TOKEN and path[6:] in by_name:
            self.finish(hub_model(**by_name[path[6:]]))  # type: ignore[arg-type]
        else:
            self.set_status(404 if token == HUB_SERVICE_TOKEN else 403)
            self.finish({"status": self.get_status(), "message": "no such user or token"})


class HubWithServiceLogins(HubModeServer):
    """``himalia serve --hub`` in front of a hub that has users named like service accounts."""

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        hub = HTTPServer(web.Application([(r"/hub/api/(.*)", FakeHub)]))
        hub.add_sockets(self._hub_sockets)
        service = HTTPServer(self.application)
        service.add_sockets(self._sockets)
        self._ready.set()
        await self._stop.wait()
        for server in (hub, service):
            server.stop()
            await server.close_all_connections()

    def cookie_of(self, token: str) -> dict[str, str]:
        name = self.hub.auth.cookie_name
        return {name: create_signed_value(self.application.settings["cookie_secret"], name, token).decode()}


@pytest.fixture
def served(accounts: ControlPlane) -> Iterator[HubWithServiceLogins]:
    with HubWithServiceLogins(accounts) as server:
        yield server


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("login", SERVICE_ACCOUNTS)
def test_a_hub_login_named_like_a_service_account_is_refused(served: HubWithServiceLogins, login: str) -> None:
    token = f"token-of-the-hub-user-{login}"
    for how in ({"cookies": served.cookie_of(token)}, {"headers": {"Authorization": f"token {token}"}}):
        me = requests.get(f"{served.base}/me", timeout=30, **how)  # type: ignore[arg-type]
        assert me.status_code == 403, me.text
        assert f"'{login}' is a Himalia service account" in me.json()["message"]
        mirror = requests.post(f"{served.base}/hub/people/hubperson", timeout=30, **how)  # type: ignore[arg-type]
        assert mirror.status_code == 403, mirror.text
    assert account(served.hub.control_plane, login)[:3] == ("service", "local", True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_mirroring_a_person_is_for_the_hubs_own_token_and_administrators(served: HubWithServiceLogins) -> None:
    def mirror(login: str, token: str) -> requests.Response:
        headers = {"Authorization": f"token {token}"}
        return requests.post(f"{served.base}/hub/people/{login}", headers=headers, timeout=30)

    refused = mirror("hubadmin", "token-of-a-hub-person")
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"] == "Mirroring a person from the hub is for the hub and administrators."
    assert mirror("hubadmin", HUB_SERVICE_TOKEN).status_code == 204
    assert mirror("hubperson", "token-of-a-hub-administrator").status_code == 204
    assert served.hub.control_plane.users.caller_for("hubadmin").is_admin
