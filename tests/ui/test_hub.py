"""The multi-user platform end to end: the dev OpenID Connect provider, JupyterHub with the tiered
local spawner and the Himalia service (hub_config/jupyterhub_config.py, as `make demo` runs it),
driven in headless Chromium.
"""

import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from playwright import sync_api as playwright_api

from himalia.execution.accounts import UserIsolation, account_name

from .conftest import ARTIFACTS, Hub, expand, sign_in_to_hub, start_hub

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest) -> Iterator[Hub]:
    """The hub of `make demo` for this module; a test module may add settings to the hub's
    environment as ``HUB_ENVIRONMENT``."""
    yield from start_hub(getattr(request.module, "HUB_ENVIRONMENT", {}))


def sign_in(browser: playwright_api.Browser, hub: Hub, login: str) -> playwright_api.Page:
    """A person's own browser, signed in to the hub through the provider's login page."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    sign_in_to_hub(page, hub, login)
    return page


def offered_tiers(page: playwright_api.Page, hub: Hub) -> dict[str, str]:
    page.goto(f"{hub.url}/hub/spawn")
    tiers = page.locator("#himalia-tiers input[name=tier]")
    tiers.first.wait_for()
    labels = page.locator("#himalia-tiers label")
    return {tiers.nth(i).get_attribute("value") or "": labels.nth(i).inner_text() for i in range(tiers.count())}


def hub_api(page: playwright_api.Page, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    """Call the hub's REST API from a signed-in page (its cookie and XSRF token), as a script would."""
    answer = page.evaluate(
        """async ([method, path, body]) => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
            const r = await fetch(path, {method, headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'},
                                         body: body === null ? undefined : JSON.stringify(body)});
            return [r.status, await r.text()];
        }""",
        [method, path, body],
    )
    status, text = answer
    return status, (json.loads(text) if text else {})


def test_an_analyst_signs_in_picks_an_allowed_tier_and_works_in_the_lab(
    browser: playwright_api.Browser, hub: Hub
) -> None:
    bob = sign_in(browser, hub, "bob")
    assert list(offered_tiers(bob, hub)) == ["small", "medium"]  # analysts: not large, not gpu

    # An administrator changes a tier; the next spawn form shows it, no hub restart.
    hub.himalia("tier", "set", "medium", "--display-name", "Medium, resized by the admin", "--cpu-limit", "1.5")
    assert "Medium, resized by the admin" in offered_tiers(bob, hub)["medium"]
    bob.screenshot(path=str(ARTIFACTS / "hub-spawn-form.png"))

    bob.check("#himalia-tiers input[value=medium]")
    bob.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    bob.wait_for_url(f"{hub.url}/user/bob/lab**", timeout=120_000)
    bob.locator("#jupyterlab-splash").wait_for(state="detached", timeout=120_000)
    tab = bob.locator(".jp-SideBar [data-id='himalia-sidebar']")
    sidebar = bob.locator("#himalia-sidebar")
    for _ in range(3):  # the lab may still be restoring its layout (and toggle the sidebar back) when first asked
        if tab.get_attribute("aria-selected") != "true":
            tab.click()
        try:
            sidebar.wait_for(state="visible", timeout=10_000)
            break
        except playwright_api.TimeoutError:
            continue
    projects = expand(sidebar, "Projects")
    projects.locator("[data-project='FRAUD']").wait_for()  # through the server's forwarding to the service
    bob.screenshot(path=str(ARTIFACTS / "hub-lab-projects.png"))
    # The lab's address of the administration application leads to the hub service's: bob (an analyst,
    # who may create projects) has a button for it, and there may open the Projects page only.
    sidebar.locator(".hml-admin-link").wait_for()
    bob.goto(f"{hub.url}/user/bob/himalia/admin/")
    bob.locator(".hml-admin[data-login='bob'] .hml-admin-main[data-page='projects']").wait_for()
    assert bob.locator("nav[aria-label='Administration pages'] a").all_inner_texts() == ["Projects"]
    assert bob.url == f"{hub.url}/services/himalia/admin/"

    usage = json.loads(hub.himalia("--json", "tier", "usage", "--running"))["items"]
    assert [(u["user"], u["tier"], u["kind"]) for u in usage] == [("bob", "medium", "server")]
    server = next(p for p in psutil.process_iter(["cmdline", "environ"]) if _serves(p, "bob"))
    environment = server.info["environ"] or {}
    assert environment["HIMALIA_TIER"] == "medium" and environment["CPU_LIMIT"] == "1.5"
    assert not {"HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_HOME"} & set(environment)
    if os.geteuid() == 0:  # the server is bob's own OS account, not the hub's (UserIsolation)
        account = pwd.getpwnam(account_name(UserIsolation().account_template, "bob"))
        assert (server.uids().real, server.gids().real) == (account.pw_uid, account.pw_gid)
        assert environment["HOME"] == account.pw_dir and server.cwd() == account.pw_dir
        assert_reaches_nothing_of_the_platform(hub, server)

    # The server's token is bob's and only bob's at the service.
    token = environment["JUPYTERHUB_API_TOKEN"]
    as_bob = {"Authorization": f"token {token}"}
    assert requests.get(f"{hub.service_api}/me", headers=as_bob, timeout=30).json()["login"] == "bob"
    assert requests.get(f"{hub.service_api}/users", headers=as_bob, timeout=30).status_code == 403
    assert requests.get(f"{hub.service_api}/tiers?user=carol", headers=as_bob, timeout=30).status_code == 403
    admitted = requests.post(
        f"{hub.service_api}/servers", headers=as_bob, json={"user": "alice", "tier": "gpu"}, timeout=30
    )
    assert admitted.status_code == 403

    # A second server on the same tier is beyond the tier's limit per user.
    bob.goto(f"{hub.url}/hub/home")  # the hub's own XSRF cookie, not the lab's
    status, refusal = hub_api(bob, "POST", "/hub/api/users/bob/servers/second", {"tier": "medium"})
    assert status == 409, refusal
    assert "bob already runs 1 server(s) on the tier 'medium'" in str(refusal.get("message"))
    bob.context.close()


def assert_reaches_nothing_of_the_platform(hub: Hub, server: psutil.Process) -> None:
    """What bob's server, and so its kernels and terminals, can open as its OS identity: none of
    the hub's or the service's files, nor the service's environment; the demo's shared warehouse, yes."""
    service = next(p for p in psutil.process_iter(["cmdline"]) if "serve --hub" in " ".join(p.info["cmdline"] or []))
    platform = [hub.state / name for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "service-token")]
    platform += [hub.state / "himalia" / name for name in ("himalia.sqlite", "secret.key", "audit.key")]
    platform += [Path(f"/proc/{service.pid}/environ")]
    assert all(path.exists() for path in platform), [path for path in platform if not path.exists()]
    identity = {"user": server.uids().real, "group": server.gids().real, "extra_groups": []}

    def opens(*command: str) -> bool:
        return subprocess.run(command, capture_output=True, **identity).returncode == 0

    assert [path for path in platform if opens("head", "-c", "1", str(path))] == []
    assert not opens("ls", str(hub.state / "himalia")) and not opens("ls", str(hub.state))
    assert opens("head", "-c", "1", str(hub.state / "himalia-data" / "warehouse.sqlite"))
    # Another person's files: alice's account (as her server or her scenario kernels would make it).
    alice = UserIsolation(home=str(hub.state / "himalia")).for_login("alice")
    assert alice is not None and alice.uid != server.uids().real
    private = alice.home / "notes.txt"
    private.write_text("alice's own\n")
    os.chown(private, alice.uid, alice.gid)
    assert not opens("head", "-c", "1", str(private)) and not opens("ls", str(alice.home))


def _serves(process: psutil.Process, user: str) -> bool:
    command = " ".join(process.info["cmdline"] or [])
    return "jupyterhub-singleuser" in command and f"/user/{user}/" in json.dumps(process.info["environ"] or {})


def test_a_reader_is_refused_a_forbidden_tier_through_the_hub_api(browser: playwright_api.Browser, hub: Hub) -> None:
    carol = sign_in(browser, hub, "carol")
    assert list(offered_tiers(carol, hub)) == ["small"]
    status, refusal = hub_api(carol, "POST", "/hub/api/users/carol/server", {"tier": "medium"})
    assert status == 403, refusal
    assert "The tier 'medium' is not available to carol" in str(refusal.get("message"))
    assert json.loads(hub.himalia("--json", "tier", "usage", "--user", "carol"))["items"] == []
    carol.context.close()


def test_hub_admins_are_himalia_admins_and_groups_come_from_the_provider(
    browser: playwright_api.Browser, hub: Hub
) -> None:
    alice = sign_in(browser, hub, "alice")
    alice.goto(f"{hub.url}/services/himalia/")  # the Services menu's link: the administration application
    alice.locator(".hml-admin[data-login='alice'] .hml-admin-nav").wait_for()
    alice.goto(f"{hub.service_api}/me")
    me = json.loads(alice.locator("body").inner_text())
    assert me["login"] == "alice" and me["global_permissions"]["admin"]
    assert {"admins", "data_team", "administrators"} <= set(me["groups"])
    alice.context.close()
