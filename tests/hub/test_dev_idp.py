"""The local OpenID Connect provider (hub_config/dev-idp) speaks real OIDC to a confidential client.

The browser is a ``requests.Session`` that follows the provider's redirects by hand and stops at the
hub's redirect_uri (nothing listens there). The last test hands the code to oauthenticator's own
``GenericOAuthenticator``, configured as the hub will be, to check the back channel end to end.
"""

import base64
import hashlib
import html
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
from oauthenticator.oauth2 import OAuthLoginHandler

from .idp import DEMO_PASSWORD, REPO, DevIdentityProvider, DevIdentityProviderError, free_port

CLIENT_ID = "himalia-hub"
CLIENT_SECRET = "test-" + secrets.token_urlsafe(16)
#: Never fetched: the flows stop when the provider redirects there.
REDIRECT_URI = "http://127.0.0.1:8000/hub/oauth_callback"
SCOPE = "openid profile email groups offline_access"
ACCESS_TOKEN_TTL = 600
INVALID = "Invalid login or password."
TIMEOUT = 10


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with DevIdentityProvider(
        free_port(), CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], access_token_ttl=ACCESS_TOKEN_TTL
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def metadata(idp: DevIdentityProvider) -> dict[str, Any]:
    response = requests.get(idp.discovery_url, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


# -- a browser, by hand -----------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def follow(session: requests.Session, response: requests.Response, stop_at: str) -> requests.Response | str:
    """Follow redirects from ``response``; the first Location under ``stop_at``, or the last page."""
    for _ in range(10):
        if not response.is_redirect:
            return response
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(stop_at):
            return location
        response = session.get(location, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError("too many redirects")


def login_form(page: requests.Response) -> str:
    """The action URL of the sign-in form on ``page``."""
    assert "<title>Himalia dev sign-in</title>" in page.text
    assert 'name="login"' in page.text
    assert 'name="password"' in page.text
    assert re.search(r"<button[^>]*>Sign in</button>", page.text)
    match = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert match, page.text
    return urljoin(page.url, html.unescape(match.group(1)))


@dataclass
class Authorization:
    page: requests.Response  # the sign-in page first shown
    state: str
    nonce: str
    verifier: str | None
    url: str

    def submit(self, session: requests.Session, login: str, password: str) -> requests.Response | str:
        response = session.post(
            login_form(self.page), data={"login": login, "password": password}, allow_redirects=False, timeout=TIMEOUT
        )
        return follow(session, response, REDIRECT_URI)


def authorize(session: requests.Session, metadata: dict[str, Any], *, pkce: bool = True, **extra: str) -> Authorization:
    """Open the authorization URL as the hub would send the browser there; stop on the sign-in page."""
    verifier, challenge = pkce_pair() if pkce else (None, None)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
        "nonce": nonce,
        **({"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}),
        **extra,
    }
    url = f"{metadata['authorization_endpoint']}?{urlencode(params)}"
    page = follow(session, session.get(url, allow_redirects=False, timeout=TIMEOUT), REDIRECT_URI)
    assert isinstance(page, requests.Response), f"redirected to the hub without signing in: {page}"
    assert page.status_code == 200, page.text
    return Authorization(page, state, nonce, verifier, url)


def callback_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT_URI + "?"), location
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def sign_in(
    metadata: dict[str, Any], login: str = "alice", password: str = DEMO_PASSWORD, *, pkce: bool = True
) -> tuple[Authorization, dict[str, str]]:
    session = requests.Session()
    authorization = authorize(session, metadata, pkce=pkce)
    location = authorization.submit(session, login, password)
    assert isinstance(location, str), f"no redirect to the hub: {location.status_code} {location.text}"
    params = callback_params(location)
    assert params["state"] == authorization.state
    assert params["iss"] == metadata["issuer"]
    return authorization, params


def exchange(metadata: dict[str, Any], code: str, verifier: str | None, *, basic: bool = True) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier:
        data["code_verifier"] = verifier
    if basic:
        return requests.post(metadata["token_endpoint"], data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT)
    data |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return requests.post(metadata["token_endpoint"], data=data, timeout=TIMEOUT)


def userinfo(metadata: dict[str, Any], access_token: str) -> requests.Response:
    return requests.get(
        metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT
    )


# -- the tests ------------------------------------------------------------------------------------


def test_discovery_document(idp: DevIdentityProvider, metadata: dict[str, Any]) -> None:
    assert metadata["issuer"] == idp.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert metadata[endpoint].startswith(idp.issuer + "/"), endpoint
    assert {"openid", "profile", "email", "groups", "offline_access"} <= set(metadata["scopes_supported"])
    assert {"preferred_username", "groups", "email"} <= set(metadata["claims_supported"])
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(metadata["token_endpoint_auth_methods_supported"])
    assert metadata["response_types_supported"] == ["code"]


def test_authorization_code_flow_with_pkce_userinfo_and_refresh(
    idp: DevIdentityProvider, metadata: dict[str, Any]
) -> None:
    authorization, params = sign_in(metadata)

    response = exchange(metadata, params["code"], authorization.verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == ACCESS_TOKEN_TTL
    assert set(tokens["scope"].split()) >= {"openid", "profile", "email", "groups"}
    assert tokens["refresh_token"]

    # The ID token is signed with the key the provider publishes, and carries the claims too.
    keys = jwt.PyJWKSet.from_dict(requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())
    header = jwt.get_unverified_header(tokens["id_token"])
    key = next(key for key in keys.keys if key.key_id == header["kid"])
    claims = jwt.decode(tokens["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer=idp.issuer)
    assert claims["nonce"] == authorization.nonce
    assert claims["sub"] == "alice"
    assert claims["groups"] == ["admins", "data_team"]

    response = userinfo(metadata, tokens["access_token"])
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["sub"] == "alice"
    assert info["preferred_username"] == "alice"
    assert info["name"] == "Alice Martin"
    assert info["email"] == "alice@example.org"
    assert info["email_verified"] is True
    assert {"admins", "data_team"} <= set(info["groups"])

    # Refresh, this time with the credentials in the body (client_secret_post, oauthenticator's default).
    response = requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    refreshed = response.json()
    assert refreshed["access_token"] != tokens["access_token"]
    assert userinfo(metadata, refreshed["access_token"]).json()["groups"] == ["admins", "data_team"]

    # A code is good once; replaying it revokes what it gave, refreshed tokens included.
    assert exchange(metadata, params["code"], authorization.verifier).status_code == 400
    assert userinfo(metadata, refreshed["access_token"]).status_code == 401

    log = idp.output()
    assert 'dev-idp login ok: "alice"' in log
    assert DEMO_PASSWORD not in log


def test_wrong_password_shows_the_form_again_and_signs_nobody_in(
    idp: DevIdentityProvider, metadata: dict[str, Any]
) -> None:
    session = requests.Session()
    authorization = authorize(session, metadata)
    wrong = "not-" + DEMO_PASSWORD
    for login in ("bob", "mallory"):
        page = authorization.submit(session, login, wrong)
        assert isinstance(page, requests.Response), f"redirected to the hub with a wrong password: {page}"
        assert page.status_code == 401
        assert INVALID in page.text
        assert f'value="{login}"' in page.text
        login_form(page)  # the form is shown again

    # No session came of it: the same browser is asked to sign in again.
    assert "Himalia dev sign-in" in authorize(session, metadata).page.text
    # And the interaction still accepts the right password.
    location = authorization.submit(session, "bob", DEMO_PASSWORD)
    assert isinstance(location, str)
    assert callback_params(location)["state"] == authorization.state

    log = idp.output()
    assert 'dev-idp login failed: "bob"' in log
    assert 'dev-idp login failed: "mallory"' in log
    assert wrong not in log


def test_sign_out_ends_the_provider_session(metadata: dict[str, Any]) -> None:
    """What lets the demo switch people: the hub's logout_redirect_url, or prompt=login."""
    session = requests.Session()
    authorization = authorize(session, metadata)
    assert isinstance(authorization.submit(session, "alice", DEMO_PASSWORD), str)
    # Signed in at the provider: the next authorization goes straight back to the hub...
    again = session.get(authorization.url, allow_redirects=False, timeout=TIMEOUT)
    assert isinstance(follow(session, again, REDIRECT_URI), str)
    # ...unless the hub asks for a fresh sign-in.
    assert "Himalia dev sign-in" in authorize(session, metadata, prompt="login").page.text

    after = "http://127.0.0.1:8000/hub/login"
    page = session.get(
        metadata["end_session_endpoint"],
        params={"client_id": CLIENT_ID, "post_logout_redirect_uri": after},
        timeout=TIMEOUT,
    )
    assert page.status_code == 200
    assert "Himalia dev sign-out" in page.text
    form = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)">(.*?)</form>', page.text)
    assert form, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    response = session.post(
        html.unescape(form.group(1)), data={**fields, "logout": "yes"}, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.is_redirect
    assert response.headers["Location"] == after

    assert "Himalia dev sign-in" in authorize(session, metadata).page.text


def test_unknown_redirect_uri_is_refused(metadata: dict[str, Any]) -> None:
    for redirect_uri in ("http://127.0.0.1:8000/hub/elsewhere", "http://evil.example/hub/oauth_callback"):
        params = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": "s",
        }
        response = requests.get(metadata["authorization_endpoint"], params=params, allow_redirects=False, timeout=10)
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert "redirect_uri" in response.text


def test_pkce_is_checked_when_sent_and_optional_for_the_confidential_client(metadata: dict[str, Any]) -> None:
    _, params = sign_in(metadata, "carol")
    response = exchange(metadata, params["code"], pkce_pair()[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"

    # oauthenticator's enable_pkce=False: no challenge, no verifier, secret in the body.
    _, params = sign_in(metadata, "carol", pkce=False)
    response = exchange(metadata, params["code"], None, basic=False)
    assert response.status_code == 200, response.text
    assert userinfo(metadata, response.json()["access_token"]).json()["groups"] == ["readers"]


def test_wrong_client_secret_is_refused(metadata: dict[str, Any]) -> None:
    authorization, params = sign_in(metadata, "bob")
    response = requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": authorization.verifier,
        },
        auth=(CLIENT_ID, "wrong-secret"),
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_missing_node_modules_gives_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from . import idp as module

    monkeypatch.setattr(module, "IDP_DIR", tmp_path)
    with pytest.raises(DevIdentityProviderError, match=r"npm ci --prefix hub_config/dev-idp"):
        DevIdentityProvider(free_port(), CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI]).start()


# -- oauthenticator's GenericOAuthenticator against it ---------------------------------------------


async def test_generic_oauthenticator_signs_in_and_refreshes(
    idp: DevIdentityProvider, metadata: dict[str, Any]
) -> None:
    from oauthenticator.generic import GenericOAuthenticator
    from oauthenticator.oauth2 import OAuthLoginHandler

    authenticator = GenericOAuthenticator(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        oauth_callback_url=REDIRECT_URI,
        authorize_url=metadata["authorization_endpoint"],
        token_url=metadata["token_endpoint"],
        userdata_url=metadata["userinfo_endpoint"],
        scope=["openid", "profile", "email", "groups"],
        username_claim="preferred_username",
        manage_groups=True,
        auth_state_groups_key="oauth_user.groups",
        admin_groups={"admins"},
        allowed_groups={"admins", "data_team", "analysts", "readers"},
        enable_auth_state=True,
    )

    class LoginHandler(OAuthLoginHandler):
        """Just enough of the hub's /hub/oauth_login to capture where it sends the browser."""

        log = logging.getLogger("test.oauth_login")
        authenticator = None  # shadows the hub's settings-backed property

        def __init__(self, authenticator: GenericOAuthenticator) -> None:
            self.authenticator = authenticator

        def get_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
            return default

        def set_state_cookie(self, value: str) -> None:
            self.state_cookie = value

        def redirect(self, url: str, permanent: bool = False, status: int | None = None) -> None:
            self.location = url

    login = LoginHandler(authenticator)
    login.get()
    sent = parse_qs(urlsplit(login.location).query)
    assert sent["code_challenge_method"] == ["S256"]

    session = requests.Session()
    page = follow(session, session.get(login.location, allow_redirects=False, timeout=TIMEOUT), REDIRECT_URI)
    assert isinstance(page, requests.Response)
    response = session.post(
        login_form(page), data={"login": "alice", "password": DEMO_PASSWORD}, allow_redirects=False, timeout=TIMEOUT
    )
    location = follow(session, response, REDIRECT_URI)
    assert isinstance(location, str)
    code = callback_params(location)["code"]

    class CallbackHandler:
        """What authenticate() reads from the hub's /hub/oauth_callback."""

        def get_argument(self, name: str, default: Any = None) -> Any:
            return code if name == "code" else default

        def get_state_cookie(self) -> str:
            return login.state_cookie

    model = await authenticator.authenticate(CallbackHandler())
    assert model["name"] == "alice"
    assert model["admin"] is True
    assert set(model["groups"]) == {"admins", "data_team"}
    assert model["auth_state"]["refresh_token"]
    assert await authenticator.check_allowed("alice", model)

    # An access token the provider no longer accepts: refresh_user falls back to the refresh token.
    auth_state = model["auth_state"]
    first_token = auth_state["access_token"]
    auth_state["access_token"] = auth_state["token_response"]["access_token"] = "expired"

    class User:
        name = "alice"

        async def get_auth_state(self) -> dict[str, Any]:
            return auth_state

    refreshed = await authenticator.refresh_user(User())
    assert refreshed, idp.output()
    assert refreshed["name"] == "alice"
    assert refreshed["auth_state"]["access_token"] not in ("expired", first_token)
    assert set(refreshed["groups"]) == {"admins", "data_team"}


# -- as `make demo` starts it: the redirect URIs follow the hub's port, at both loopback names -----

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class DemoIdentityProvider(DevIdentityProvider):
    """The provider as the Makefile starts it: no redirect URIs given, only the hub's port (IDP_HUB_PORT)."""

    def __init__(self, port: int, hub_port: int) -> None:
        super().__init__(port, CLIENT_ID, CLIENT_SECRET, [])
        self.hub_port = hub_port

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        del env["IDP_REDIRECT_URIS"]
        env["IDP_HUB_PORT"] = str(self.hub_port)
        return env


@pytest.fixture(scope="module")
def demo_idp() -> Iterator[DemoIdentityProvider]:
    hub_port = free_port()
    assert hub_port != 8000
    with DemoIdentityProvider(free_port(), hub_port) as provider:
        yield provider


def sign_in_at(session: requests.Session, authorize_url: str, callback: str) -> str:
    """Sign in as alice from an authorization URL; the provider's redirect to ``callback``."""
    page = follow(session, session.get(authorize_url, allow_redirects=False, timeout=TIMEOUT), callback)
    assert isinstance(page, requests.Response), f"redirected without signing in: {page}"
    assert page.status_code == 200, page.text
    response = session.post(
        login_form(page), data={"login": "alice", "password": DEMO_PASSWORD}, allow_redirects=False, timeout=TIMEOUT
    )
    location = follow(session, response, callback)
    assert isinstance(location, str), f"no redirect to the hub: {location.status_code} {location.text}"
    assert location.startswith(callback + "?"), location
    return location


def test_redirect_uris_follow_the_hub_port_at_both_hosts(demo_idp: DemoIdentityProvider) -> None:
    issuer = demo_idp.issuer
    for host in LOOPBACK_NAMES:
        callback = f"http://{host}:{demo_idp.hub_port}/hub/oauth_callback"
        params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": callback, "scope": "openid"}
        location = sign_in_at(requests.Session(), f"{issuer}/auth?{urlencode(params | {'state': host})}", callback)
        assert parse_qs(urlsplit(location).query)["state"] == [host]

    # The default hub port is no longer registered once the hub moved.
    moved_away = {"response_type": "code", "client_id": CLIENT_ID, "scope": "openid", "state": "s"}
    moved_away["redirect_uri"] = "http://127.0.0.1:8000/hub/oauth_callback"
    response = requests.get(f"{issuer}/auth", params=moved_away, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "redirect_uri" in response.text


#: Loads hub_config/jupyterhub_config.py as JupyterHub does, in a process of its own (it sets the
#: umask and the environment), and prints the authenticator's settings.
LOAD_HUB_CONFIG = """
import json, sys
from traitlets.config.loader import PyFileConfigLoader
config = PyFileConfigLoader("jupyterhub_config.py", path=sys.argv[1]).load_config()
print(json.dumps({"GenericOAuthenticator": config.GenericOAuthenticator}, default=sorted))
"""


def demo_hub_authenticator(idp: DemoIdentityProvider, state: Path) -> Any:
    """The ``GenericOAuthenticator`` that ``make demo``'s hub configuration builds against ``idp``."""
    from oauthenticator.generic import GenericOAuthenticator
    from traitlets.config import Config

    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("HIMALIA_", "JUPYTERHUB_"))},
        "HIMALIA_HUB_STATE": str(state),
        "HIMALIA_HUB_PORT": str(idp.hub_port),
        "HIMALIA_OIDC_ISSUER": idp.issuer,
        "HIMALIA_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "HIMALIA_SERVICE_TOKEN": secrets.token_hex(16),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_HUB_CONFIG, str(REPO / "hub_config")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    return GenericOAuthenticator(config=Config(json.loads(loaded.stdout)))


#: What the authenticator reads of the hub's own server: where its pages live.
HUB = SimpleNamespace(server=SimpleNamespace(base_url="/hub/"))


class HostLoginHandler(OAuthLoginHandler):
    """Just enough of the hub's /hub/oauth_login reached at ``host:port``, capturing the redirect."""

    log = logging.getLogger("test.oauth_login")
    authenticator = None  # shadows the hub's settings-backed properties
    hub = HUB

    def __init__(self, authenticator: Any, host: str, port: int) -> None:
        self.authenticator = authenticator
        self.request = SimpleNamespace(protocol="http", host=f"{host}:{port}")

    def get_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
        return default

    def set_state_cookie(self, value: str) -> None:
        self.state_cookie = value

    def redirect(self, url: str, permanent: bool = False, status: int | None = None) -> None:
        self.location = url


@dataclass
class HostCallbackHandler:
    """What authenticate() reads from the hub's /hub/oauth_callback, reached where the login was."""

    login: HostLoginHandler
    code: str
    hub = HUB

    @property
    def request(self) -> SimpleNamespace:
        return self.login.request

    def get_argument(self, name: str, default: Any = None) -> Any:
        return self.code if name == "code" else default

    def get_state_cookie(self) -> str:
        return self.login.state_cookie


async def test_the_demo_hub_signs_in_at_127_0_0_1_and_at_localhost(
    demo_idp: DemoIdentityProvider, tmp_path: Path
) -> None:
    """The hub calls back on the host the browser used, where its state cookie was set."""
    authenticator = demo_hub_authenticator(demo_idp, tmp_path / "hub")
    for host in LOOPBACK_NAMES:
        login = HostLoginHandler(authenticator, host, demo_idp.hub_port)
        login.get()
        callback = f"http://{host}:{demo_idp.hub_port}/hub/oauth_callback"
        assert parse_qs(urlsplit(login.location).query)["redirect_uri"] == [callback]
        code = parse_qs(urlsplit(sign_in_at(requests.Session(), login.location, callback)).query)["code"][0]

        model = await authenticator.authenticate(HostCallbackHandler(login, code))
        assert model is not None, demo_idp.output()
        assert model["name"] == "alice", host
        assert set(model["groups"]) == {"admins", "data_team"}
