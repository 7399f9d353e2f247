"""Behind JupyterHub, the administration application changes things with the hub's login cookie:
HubOAuth accepts the cookie for a change only with the XSRF token that the application's page set
at the service's prefix, so a forged cross-site request (which cannot read it) is refused."""

from collections.abc import Iterator

import pytest
import requests

from himalia.controlplane import ControlPlane

from ..security.test_http_edge import HubModeServer

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def served(plane: ControlPlane) -> Iterator[HubModeServer]:
    with HubModeServer(plane) as server:
        yield server


def signed_in(served: HubModeServer) -> requests.Session:
    """A browser with the service's login cookie, as HubOAuth sets it after the OAuth round trip."""
    session = requests.Session()
    name, _, value = served.login_cookie().partition("=")
    session.cookies.set(name, value, path="/services/himalia/")
    return session


@pytest.fixture
def browser(served: HubModeServer) -> requests.Session:
    """A browser signed in to the hub that opened the administration page."""
    session = signed_in(served)
    page = session.get(served.base.removesuffix("himalia/api/v1") + "admin/", timeout=30)
    assert page.status_code == 200 and "himalia-admin-config" in page.text, page.text
    return session


def xsrf_of(session: requests.Session) -> str:
    (cookie,) = [c for c in session.cookies if c.name == "_xsrf"]
    assert cookie.path == "/services/himalia/"  # the service's own, which the hub's pages never see
    return str(cookie.value)


def create_token(served: HubModeServer, session: requests.Session, **headers: str) -> requests.Response:
    return session.post(f"{served.base}/tokens", json={"name": "from the panel"}, headers=headers, timeout=30)


def test_a_change_with_the_cookie_and_its_xsrf_token_is_made(served: HubModeServer, browser: requests.Session) -> None:
    made = create_token(served, browser, **{"X-XSRFToken": xsrf_of(browser)})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "from the panel"


@pytest.mark.parametrize("xsrf", [None, "", "forged", "wrong-signature|0|1"])
def test_a_change_with_the_cookie_but_no_or_a_wrong_xsrf_token_is_refused(
    served: HubModeServer, browser: requests.Session, xsrf: str | None
) -> None:
    headers = {} if xsrf is None else {"X-XSRFToken": xsrf}
    refused = create_token(served, browser, **headers)
    assert refused.status_code == 403, refused.text
    assert "needs its XSRF token" in refused.json()["message"]
    listed = browser.get(f"{served.base}/tokens", timeout=30)
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text  # reading needs none


def test_the_xsrf_token_of_another_session_does_not_do(served: HubModeServer, browser: requests.Session) -> None:
    """The token is bound to the session it was set in (the hub's session id and login token)."""
    other = signed_in(served)
    other.cookies.set("jupyterhub-session-id", "another-session", path="/")
    other.get(served.base.removesuffix("himalia/api/v1") + "admin/", timeout=30)
    theirs = xsrf_of(other)
    assert theirs != xsrf_of(browser)
    assert create_token(served, other, **{"X-XSRFToken": theirs}).status_code == 201  # in its own session
    refused = create_token(served, browser, **{"X-XSRFToken": theirs})
    assert refused.status_code == 403, refused.text
