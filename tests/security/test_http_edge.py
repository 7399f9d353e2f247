"""Class 10 at the HTTP edge, and the 500s of class 11 that were outages, not bugs.

- Forwarded-for headers: ``himalia serve`` believed ``X-Forwarded-For``/``X-Real-IP`` from anyone,
  so any caller could write any address into the audit trail. Now only from the configured
  ``ControlPlane.trusted_proxies`` (``$HIMALIA_TRUSTED_PROXIES``), proved on the real ``himalia
  serve`` process and, variant by variant, on its application.
- Under Jupyter, a request with an invalid ``Authorization`` header skipped the XSRF check and then
  authenticated by the login cookie. Now any Authorization header that is not a valid token is a
  401, whatever cookie rides along; with no header, the cookie still works and still needs XSRF.
- A database that cannot be reached is a 503 with a sentence and ``Retry-After``; a full disk a
  507 with a sentence (SQLite and PostgreSQL), never a generic 500.
"""

import asyncio
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from jupyterhub.services.auth import HubOAuth
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import create_signed_value

from himalia.api.base import LOOPBACK, RETRY_AFTER_SECONDS, TRUSTED_PROXIES_SETTING, store_failure, trusted_networks
from himalia.controlplane import ControlPlane
from himalia.core.errors import StorageFull, StoreUnavailable
from himalia.hub.service import HubService, make_hub_application
from himalia.store.orm import ApiToken

from ..conftest import AUDIT_KEY, SECRET_KEY, LiveAPI, World
from ..hosts import test_extension as jupyter_host
from ..hosts.test_extension import API, Fetch, as_user, assert_error, body, login_cookie
from .conftest import Ledger

FORWARDED = "10 forwarded-for headers"
AUTHORIZATION = "10 invalid Authorization headers"
OUTAGES = "11 store outages"
PEER = "127.0.0.1"

# The Jupyter host's fixtures (its server configuration and clients), shared with its own tests.
jp_server_config = jupyter_host.jp_server_config
fetch = jupyter_host.fetch
fetch_anonymous = jupyter_host.fetch_anonymous
CLIENT = "203.0.113.7"


def forged_headers() -> Iterator[dict[str, str]]:
    """What a client (not a proxy) sends to pass for another address."""
    for forged in (CLIENT, f"{CLIENT}, 198.51.100.2", "10.1.2.3", "127.0.0.2", "::1", "2001:db8::7"):
        yield {"X-Forwarded-For": forged}
        yield {"X-Real-IP": forged}
        yield {"X-Forwarded-For": forged, "X-Real-IP": "198.51.100.9"}
    yield {"X-Forwarded-For": f"{CLIENT}, {PEER}"}
    yield {"X-Forwarded-For": ", ".join(f"198.51.100.{i % 250}" for i in range(1_000))}
    yield {"X-Forwarded-For": "not-an-address"}
    yield {"Forwarded": f"for={CLIENT}"}
    yield {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https", "X-Scheme": "https"}


def recorded_address(base: str, world: World, headers: dict[str, str]) -> str:
    """The client address the audit trail records for a token the reader creates with ``headers``."""
    auth = {"Authorization": f"token {world.tokens['reader']}"}
    created = requests.post(f"{base}/tokens", json={"name": "edge"}, headers={**auth, **headers}, timeout=30)
    assert created.status_code == 201, created.text
    admin = {"Authorization": f"token {world.tokens['admin']}"}
    entries = requests.get(f"{base}/audit", params={"action": "token.create", "limit": 1}, headers=admin, timeout=30)
    [entry] = entries.json()["items"]
    assert entry["details"]["name"] == "edge" and entry["object_id"] == str(created.json()["id"])
    return str(entry["client_address"])


# -- forwarded-for headers ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_forwarded_headers_from_a_peer_that_is_no_trusted_proxy_are_ignored(api: LiveAPI, ledger: Ledger) -> None:
    assert api.plane.trusted_proxies is None
    for headers in forged_headers():
        address = recorded_address(api.base, api.world, headers)
        assert ledger.tried(FORWARDED, f"untrusted peer sends {headers}"[:200], address == PEER), (headers, address)


@pytest.fixture
def proxied(plane: ControlPlane, world: World) -> Iterator[LiveAPI]:
    """``himalia serve``'s application behind a proxy on loopback and another in 10.0.0.0/8."""
    plane.trusted_proxies = [PEER, "10.0.0.0/8"]
    live = LiveAPI(plane, world).start()
    yield live
    live.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_trusted_proxy_names_the_client_and_cannot_be_talked_past(proxied: LiveAPI) -> None:
    for headers, expected in [
        ({"X-Forwarded-For": CLIENT}, CLIENT),
        ({"X-Real-IP": CLIENT}, CLIENT),
        # The client wrote the left part; the proxy appended what it saw: the nearest untrusted hop.
        ({"X-Forwarded-For": f"198.51.100.9, {CLIENT}"}, CLIENT),
        ({"X-Forwarded-For": f"{CLIENT}, 10.0.0.5"}, CLIENT),
        ({"X-Forwarded-For": f"{CLIENT}, 10.0.0.5", "X-Real-IP": "198.51.100.9"}, CLIENT),
        ({"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}, "10.0.0.1"),
        ({"X-Forwarded-For": "not-an-address"}, PEER),
        ({"X-Forwarded-For": f"{CLIENT}, not-an-address"}, PEER),
        ({"X-Forwarded-For": "2001:db8::7"}, "2001:db8::7"),
        ({}, PEER),
    ]:
        assert recorded_address(proxied.base, proxied.world, headers) == expected, headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve_process(db_url: str, world: World, tmp_path: Path) -> Iterator[Any]:
    """``himalia serve`` as operators start it, on the test database, until the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**environment: str) -> str:
        port = free_port()
        env = {
            **os.environ,
            "HIMALIA_HOME": str(tmp_path / f"serve-{port}"),
            "HIMALIA_DB_URL": db_url,
            "HIMALIA_SECRET_KEYS": SECRET_KEY,
            "HIMALIA_AUDIT_KEY": AUDIT_KEY,
            **environment,
        }
        env.pop("JUPYTERHUB_API_TOKEN", None)
        command = [sys.executable, "-m", "himalia", "serve", "--port", str(port)]
        started.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}/himalia/api/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    return base
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError("himalia serve did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(20)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_himalia_serve_believes_forwarded_headers_only_from_its_trusted_proxies(
    serve_process: Any, world: World, ledger: Ledger
) -> None:
    """The process, not only its application: tornado's ``xheaders`` believed anyone."""
    base = serve_process()
    for headers in ({"X-Forwarded-For": CLIENT}, {"X-Real-IP": CLIENT}):
        address = recorded_address(base, world, headers)
        assert ledger.tried(FORWARDED, f"himalia serve, untrusted peer sends {headers}", address == PEER), address
    behind_proxy = serve_process(HIMALIA_TRUSTED_PROXIES=PEER)
    assert recorded_address(behind_proxy, world, {"X-Forwarded-For": f"198.51.100.9, {CLIENT}"}) == CLIENT


# -- Authorization headers under Jupyter ----------------------------------------------------------


def malformed_authorizations(jupyter_token: str, himalia_token: str) -> Iterator[str]:
    """Authorization headers that are not a valid token, of several shapes."""
    yield from ("", " ", "token", "token ", "Token", "Bearer", "Bearer  ", "token\t")
    yield from ("Basic b3duZXI6c2VjcmV0", "Digest username=owner", "Negotiate YIIG", "AWS4-HMAC-SHA256 x")
    yield from ("token not-the-jupyter-token", "Bearer not-the-jupyter-token", "token " + "a" * 10_000)
    yield from ("token hml_not-a-real-token", "Bearer hml_", "hml_abc", himalia_token, f"token {himalia_token}x")
    yield from (jupyter_token, f"token{jupyter_token}", f"token {jupyter_token}x", f"token {jupyter_token[:-1]}")
    yield from (f"Basic {jupyter_token}", f"token {jupyter_token} extra", f"token {jupyter_token},{jupyter_token}")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_invalid_authorization_header_is_401_whatever_cookie_rides_along(
    fetch: Fetch, fetch_anonymous: Fetch, jp_serverapp: Any, world: World, ledger: Ledger
) -> None:
    cookie = login_cookie(fetch)
    jupyter_token = jp_serverapp.identity_provider.token
    # The cookie alone is the server's owner, for reading; changes need XSRF as well.
    assert body(fetch_anonymous("me", headers={"Cookie": cookie}))["login"] == "owner"
    assert (
        "_xsrf"
        in assert_error(fetch_anonymous("tokens", method="POST", body="{}", headers={"Cookie": cookie}), 403)["message"]
    )
    for header in malformed_authorizations(jupyter_token, world.tokens["reader"]):
        headers = {"Cookie": cookie, "Authorization": header}
        read = fetch_anonymous("me", headers=headers)
        write = fetch_anonymous("tokens", method="POST", body=json.dumps({"name": "forged"}), headers=headers)
        refused = read.code == 401 and write.code == 401
        assert ledger.tried(AUTHORIZATION, f"Jupyter, cookie and Authorization {header[:60]!r}", refused), (
            header,
            read.code,
            write.code,
        )
        assert_error(read, 401)
    # A valid URL token does not vouch for a different header either.
    query = fetch_anonymous(f"me?token={jupyter_token}", headers={"Authorization": "token wrong", "Cookie": cookie})
    assert ledger.tried(AUTHORIZATION, "Jupyter, ?token= with a wrong header", query.code == 401)
    # Nothing was created by any of them; the valid headers still work, each as itself.
    assert "forged" not in {t["name"] for t in body(fetch(API, "tokens"))["items"]}
    reader = {"Cookie": cookie, **as_user(world, "reader")}
    assert body(fetch_anonymous("me", headers=reader))["login"] == "reader"
    created = fetch_anonymous("tokens", method="POST", body=json.dumps({"name": "mine"}), headers=reader)
    assert created.code == 201 and body(created)["user"] == "reader"
    owner = {"Cookie": cookie, "Authorization": f"token {jupyter_token}"}
    assert body(fetch_anonymous("me", headers=owner))["login"] == "owner"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_invalid_authorization_header_is_401_on_himalia_serve(api: LiveAPI, ledger: Ledger) -> None:
    for header in malformed_authorizations("not-a-jupyter-server-here", api.world.tokens["reader"]):
        if header != header.lstrip():
            continue  # requests refuses to send a leading space (the Jupyter test sends it)
        response = api.http.get(f"{api.base}/me", headers={"Authorization": header}, timeout=30)
        assert ledger.tried(AUTHORIZATION, f"serve, Authorization {header[:60]!r}", response.status_code == 401)
        assert response.json()["status"] == 401


# -- outages and full disks -----------------------------------------------------------------------


def assert_outage(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    reply = response.json()
    assert reply["status"] == status and reply["message"].endswith(".") and "Internal error" not in reply["message"]
    assert "Traceback" not in response.text and "SELECT" not in response.text
    if status == 503:
        assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


@pytest.fixture
def outage(api: LiveAPI, backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``start()`` makes the store unreachable the way its backend fails, ``end()`` brings it back."""
    url = make_url(api.plane.db_url)

    if backend == "sqlite":
        store = Path(url.database or "")
        aside = store.with_name(store.name + ".aside")

        def start() -> None:
            api.plane.db.engine.dispose()
            store.rename(aside)
            store.mkdir()  # a folder where the file was: "unable to open database file"

        def end() -> None:
            store.rmdir()
            aside.rename(store)
            api.plane.db.engine.dispose()

    else:
        admin = request.getfixturevalue("postgres_admin")
        name = url.database

        def start() -> None:
            with admin.connect() as connection:
                connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )

        def end() -> None:
            with admin.connect() as connection:
                connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))

    class Outage:
        def __init__(self) -> None:
            self.start, self.end = start, end

    yield Outage()
    if backend == "sqlite" and aside.exists():
        shutil.rmtree(store, ignore_errors=True)
        aside.rename(store)
    elif backend != "sqlite":
        end()


def test_an_unreachable_database_is_503_with_retry_after_then_recovers(
    api: LiveAPI, outage: Any, ledger: Ledger
) -> None:
    assert api.request("GET", "/me").status_code == 200
    outage.start()
    for method, path, role in [("GET", "/me", "reader"), ("GET", "/projects", "admin"), ("POST", "/tokens", "reader")]:
        response = api.request(method, path, role, json={"name": "during"} if method == "POST" else None)
        assert ledger.tried(OUTAGES, f"{method} {path} while the store is down", response.status_code == 503)
        assert_outage(response, 503)
    outage.end()
    assert api.request("GET", "/me").json()["login"] == "admin"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_full_sqlite_store_is_507_and_reads_go_on(api: LiveAPI, ledger: Ledger) -> None:
    engine = api.plane.db.engine
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")  # the disk ends here

    event.listen(engine, "connect", cap)
    engine.dispose()
    try:
        response = api.request("PUT", "/variables", json={"variables": {"bulk": "x" * 500_000}})
        assert ledger.tried(OUTAGES, "a write to a full SQLite store", response.status_code == 507)
        assert_outage(response, 507)
        assert "disk is full" in response.json()["message"]
        assert api.request("GET", "/me").json()["login"] == "admin"
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()
    assert api.request("PUT", "/variables", json={"variables": {"bulk": "x" * 500_000}}).status_code == 200


def test_disk_and_connection_failures_map_to_one_status_each(ledger: Ledger) -> None:
    """Failures a test cannot cause safely on a shared machine: no space, PostgreSQL's disk_full."""
    for error, expected in [
        (OSError(errno.ENOSPC, "No space left on device"), StorageFull),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageFull),
        (OperationalError("INSERT", {}, psycopg.errors.DiskFull("could not extend file")), StorageFull),
        (OperationalError("INSERT", {}, psycopg.OperationalError("connection refused")), StoreUnavailable),
        (OperationalError("SELECT", {}, Exception("database is locked")), StoreUnavailable),
    ]:
        assert ledger.tried(OUTAGES, repr(error)[:100], isinstance(store_failure(error), expected)), error
    assert store_failure(ValueError("a bug")) is None
    assert store_failure(OSError(errno.EACCES, "Permission denied")) is None


# -- Authorization headers in hub mode ------------------------------------------------------------

HUB_SERVICE_TOKEN = "hub-service-token-for-the-test"
HUB_USER_TOKEN = "hub-token-of-a-hub-user"
HUB_USER = {"kind": "user", "name": "hubuser", "admin": False, "groups": [], "scopes": ["access:services"]}


class FakeHubAPI(web.RequestHandler):
    """The two answers of JupyterHub's REST API the service asks for: who holds a token, a user."""

    def get(self, path: str) -> None:
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        whoami, lookup = path == "user" and token == HUB_USER_TOKEN, path == f"users/{HUB_USER['name']}"
        if whoami or (lookup and token == HUB_SERVICE_TOKEN):
            self.finish(HUB_USER)
        else:
            self.set_status(403)
            self.finish({"status": 403, "message": "no such token"})


class HubModeServer:
    """A fake hub's API and ``himalia serve --hub``'s application, on loopback ports, in a thread."""

    def __init__(self, plane: ControlPlane) -> None:
        hub_sockets, self._sockets = bind_sockets(0, "127.0.0.1"), bind_sockets(0, "127.0.0.1")
        self._hub_sockets = hub_sockets
        # What JupyterHub gives its services through the environment; some of HubOAuth's defaults
        # read it at import, so the instance HubService uses is made here first.
        HubOAuth.clear_instance()
        HubOAuth.instance(
            api_token=HUB_SERVICE_TOKEN,
            api_url=f"http://127.0.0.1:{hub_sockets[0].getsockname()[1]}/hub/api",
            base_url="/services/himalia/",
            oauth_client_id="service-himalia",
            oauth_redirect_uri="/services/himalia/oauth_callback",
            access_scopes={"access:services"},
            cache_max_age=60,
        )
        self.hub = HubService(plane, parent=plane)
        self.application = make_hub_application(plane, self.hub)
        self.base = f"http://127.0.0.1:{self._sockets[0].getsockname()[1]}/services/himalia/himalia/api/v1"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        hub = HTTPServer(web.Application([(r"/hub/api/(.*)", FakeHubAPI)]))
        hub.add_sockets(self._hub_sockets)
        service = HTTPServer(self.application)
        service.add_sockets(self._sockets)
        self._ready.set()
        await self._stop.wait()
        for server in (hub, service):
            server.stop()
            await server.close_all_connections()

    def __enter__(self) -> "HubModeServer":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        HubOAuth.clear_instance()

    def login_cookie(self) -> str:
        """The cookie HubOAuth sets after the OAuth round trip: the user's hub token, signed."""
        name = self.hub.auth.cookie_name
        value = create_signed_value(self.application.settings["cookie_secret"], name, HUB_USER_TOKEN)
        return f"{name}={value.decode()}"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_in_hub_mode_an_invalid_authorization_header_is_401_never_the_hub_cookie(
    plane: ControlPlane, ledger: Ledger
) -> None:
    with HubModeServer(plane) as served:
        cookie = served.login_cookie()
        # The cookie alone is the hub user, for reading; a change needs a token (HubOAuth's XSRF rule
        # refuses the cookie, the service's own would refuse the change).
        me = requests.get(f"{served.base}/me", headers={"Cookie": cookie}, timeout=30)
        assert me.status_code == 200 and me.json()["login"] == "hubuser", me.text
        unsigned = requests.post(f"{served.base}/tokens", json={}, headers={"Cookie": cookie}, timeout=30)
        assert unsigned.status_code in (401, 403), unsigned.text
        for header in malformed_authorizations(HUB_USER_TOKEN, "hml_not-a-real-token"):
            if header != header.lstrip():
                continue  # requests refuses to send a leading space
            headers = {"Cookie": cookie, "Authorization": header}
            read = requests.get(f"{served.base}/me", headers=headers, timeout=30)
            write = requests.post(f"{served.base}/tokens", json={"name": "forged"}, headers=headers, timeout=30)
            refused = read.status_code == 401 and write.status_code == 401
            assert ledger.tried(AUTHORIZATION, f"hub, cookie and Authorization {header[:60]!r}", refused), (
                header,
                read.text,
                write.text,
            )
        # The hub user's own token still works, with or without the cookie.
        mine = {"Authorization": f"token {HUB_USER_TOKEN}"}
        assert requests.get(f"{served.base}/me", headers=mine, timeout=30).json()["login"] == "hubuser"
        # And the proxy in front of the hub service is loopback's unless configured.
        assert served.application.settings[TRUSTED_PROXIES_SETTING] == trusted_networks(LOOPBACK)
    with plane.db.read() as session:
        assert session.scalar(select(ApiToken.id).where(ApiToken.name == "forged")) is None
