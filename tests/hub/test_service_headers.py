"""The hub service's application: no other site may frame any of its responses, its page allows
only what it loads, and its login cookie and XSRF token are signed with a key that outlives a
restart (the home's ``hub-cookie.secret``, 0600), so people stay signed in and their changes go on."""

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from himalia.controlplane import ControlPlane
from himalia.hosts.admin import ADMIN_PAGE_POLICY, STATIC
from himalia.hub.service import HubService

from ..security.test_http_edge import HubModeServer

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

FRAME_PROTECTION = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
}


@pytest.fixture
def served(plane: ControlPlane) -> Iterator[HubModeServer]:
    with HubModeServer(plane) as server:
        yield server


def signed_in(served: HubModeServer) -> requests.Session:
    session = requests.Session()
    name, _, value = served.login_cookie().partition("=")
    session.cookies.set(name, value, path="/services/himalia/")
    return session


def service_url(served: HubModeServer, path: str) -> str:
    return served.base.removesuffix("himalia/api/v1") + path


def protection_of(response: requests.Response) -> dict[str, str]:
    return {name: response.headers.get(name, "") for name in FRAME_PROTECTION}


@pytest.mark.skipif(not (STATIC / "admin.js").exists(), reason="npm run build:admin builds the bundle")
def test_every_response_refuses_framing_by_another_site(served: HubModeServer) -> None:
    browser = signed_in(served)
    page = browser.get(service_url(served, "admin/"), timeout=30)
    assert page.status_code == 200 and "himalia-admin-config" in page.text, page.text
    assert protection_of(page) == FRAME_PROTECTION | {"Content-Security-Policy": ADMIN_PAGE_POLICY}
    # The page's policy allows what it loads: its own script and stylesheet, no inline script
    # (its configuration is JSON, not run), inline styles for the spawn-form preview's frame.
    assert "default-src 'self'" in ADMIN_PAGE_POLICY and "frame-ancestors 'self'" in ADMIN_PAGE_POLICY
    assert "<script>" not in page.text and 'type="application/json"' in page.text
    others = [
        browser.get(service_url(served, "admin/static/admin.js"), timeout=30),
        browser.get(f"{served.base}/me", timeout=30),
        requests.get(f"{served.base}/me", timeout=30),  # 401
        requests.get(service_url(served, ""), allow_redirects=False, timeout=30),  # the landing redirect
        requests.get(service_url(served, "admin/"), allow_redirects=False, timeout=30),  # to the hub's login
        requests.get(service_url(served, "nowhere"), timeout=30),  # 404
    ]
    assert [response.status_code for response in others] == [200, 200, 401, 302, 302, 404]
    for response in others:
        assert protection_of(response) == FRAME_PROTECTION, response.url


def test_a_restart_keeps_the_login_cookie_and_the_xsrf_token_valid(plane: ControlPlane) -> None:
    with HubModeServer(plane) as first:
        browser = signed_in(first)
        browser.get(service_url(first, "admin/"), timeout=30)
        xsrf = browser.cookies.get("_xsrf", path="/services/himalia/")
        assert xsrf
    with HubModeServer(plane) as restarted:
        base = restarted.base
        made = browser.post(f"{base}/tokens", json={"name": "after"}, headers={"X-XSRFToken": xsrf}, timeout=30)
        assert made.status_code == 201, made.text
        assert browser.get(f"{base}/me", timeout=30).json()["login"] == "hubuser"
    secret = Path(plane.home) / "hub-cookie.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text().strip() == HubService(plane).cookie_secret and len(secret.read_text().strip()) == 64


def test_the_cookie_secret_can_come_from_the_environment(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIMALIA_HUB_COOKIE_SECRET", "a-secret-shared-by-every-instance")
    assert HubService(plane).cookie_secret == "a-secret-shared-by-every-instance"
    assert not (Path(plane.home) / "hub-cookie.secret").exists()
