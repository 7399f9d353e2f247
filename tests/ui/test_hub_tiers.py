"""The tiers in JupyterHub's own pages: the spawn form from the groups the provider sent at this
login, in words ('1 core', the currency); the spawn pending page and the admin page naming each
server's tier.

The hub is this module's own (``start_hub`` from conftest): its provider knows one more person
than the demo's, erin, a new administrator whom Himalia has never seen before her first login.
"""

import json
from collections.abc import Iterator

import pytest
import requests
from playwright import sync_api as playwright_api

from ..hub.idp import ACCOUNTS
from .conftest import ARTIFACTS, Hub, sign_in_to_hub, start_hub

pytestmark = pytest.mark.ui

MEDIUM = "Medium (2 cores, 8 Gi memory)"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    document = json.loads(ACCOUNTS.read_text())
    carol = next(account for account in document["accounts"] if account["login"] == "carol")
    erin = {**carol, "login": "erin", "name": "Erin Novak", "email": "erin@example.org", "groups": ["admins"]}
    dave = {**carol, "login": "dave", "name": "Dave Roy", "email": "dave@example.org", "groups": ["data_team"]}
    accounts = tmp_path_factory.mktemp("idp") / "accounts.json"
    accounts.write_text(json.dumps({"accounts": [*document["accounts"], erin, dave]}))
    yield from start_hub({}, accounts=accounts)


def sign_in(browser: playwright_api.Browser, hub: Hub, login: str) -> playwright_api.Page:
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


def logins(hub: Hub) -> set[str]:
    return {user["login"] for user in json.loads(hub.himalia("--json", "user", "list"))["items"]}


def groups_of(hub: Hub, login: str) -> set[str]:
    users = json.loads(hub.himalia("--json", "user", "list"))["items"]
    return set(next(user for user in users if user["login"] == login)["groups"])


def as_the_hub(hub: Hub) -> dict[str, str]:
    """The service's own token, which the hub holds: requests made with it are the hub's."""
    return {"Authorization": f"token {(hub.state / 'service-token').read_text().strip()}"}


def test_a_new_administrators_first_form_offers_the_tiers_of_the_groups_the_provider_sent(
    browser: playwright_api.Browser, hub: Hub
) -> None:
    assert "erin" not in logins(hub)  # not synced yet: the periodic sync has not run
    erin = sign_in(browser, hub, "erin")
    offered = offered_tiers(erin, hub)
    assert list(offered) == ["small", "medium", "large", "gpu"]  # gpu: the provider's group admins only
    erin.screenshot(path=str(ARTIFACTS / "hub-tiers-first-form.png"))
    assert offered["small"].strip().startswith("Small (1 core, 2 Gi memory, 0.05 USD per hour)")
    assert "8 cores, 64 Gi memory, 1 GPU, 3.00 USD per hour" in offered["gpu"]
    assert "cores," not in offered["small"] and "1.0" not in " ".join(offered.values())
    assert {"admins", "administrators"} <= groups_of(hub, "erin")
    erin.context.close()


def test_a_group_added_at_the_provider_counts_at_the_first_form_after_login(
    browser: playwright_api.Browser, hub: Hub
) -> None:
    """dave is known to the hub and mirrored in Himalia with no group; the provider has put him in
    data_team since: the form after his next login offers data_team's tiers (medium, large)."""
    alice = sign_in(browser, hub, "alice")
    alice.goto(f"{hub.url}/hub/home")
    created = alice.evaluate(
        """async () => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
            return (await fetch('/hub/api/users/dave', {method: 'POST', headers: {'X-XSRFToken': xsrf}})).status;
        }"""
    )
    alice.context.close()
    assert created == 201
    mirrored = requests.post(f"{hub.service_api}/hub/people/dave", headers=as_the_hub(hub), timeout=30)
    assert mirrored.status_code == 204
    assert groups_of(hub, "dave") == set()
    dave = sign_in(browser, hub, "dave")
    assert list(offered_tiers(dave, hub)) == ["small", "medium", "large"]
    assert groups_of(hub, "dave") == {"data_team"}
    dave.context.close()


def test_only_the_hub_and_administrators_have_a_person_mirrored(browser: playwright_api.Browser, hub: Hub) -> None:
    mirror = f"{hub.service_api}/hub/people/carol"
    assert requests.post(mirror, timeout=30).status_code == 401
    carol = sign_in(browser, hub, "carol")
    carol.goto(f"{hub.url}/hub/token")
    token = carol.evaluate(
        """async () => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
            const r = await fetch('/hub/api/users/carol/tokens', {method: 'POST',
                headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'}, body: '{"note": "test"}'});
            return (await r.json()).token;
        }"""
    )
    carol.context.close()
    refused = requests.post(mirror, headers={"Authorization": f"token {token}"}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"] == "Mirroring a person from the hub is for the hub and administrators."
    as_hub = as_the_hub(hub)
    unknown = requests.post(f"{hub.service_api}/hub/people/nobody", headers=as_hub, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["field"] == "login"
    # A login is one path segment of the hub's API, whatever it holds: never another hub resource.
    for hostile in ("..%2Fgroups", "carol%2F..%2F..%2Fgroups", "%3Cscript%3E", "x" * 300, "caf%C3%A9%20%27"):
        answer = requests.post(f"{hub.service_api}/hub/people/{hostile}", headers=as_hub, timeout=30)
        assert answer.status_code == 404 and answer.json()["field"] == "login", (hostile, answer.text)
    nul = requests.post(f"{hub.service_api}/hub/people/a%00b", headers=as_hub, timeout=30)
    assert nul.status_code == 400 and nul.json()["field"] == "login"
    assert requests.post(mirror, headers=as_hub, timeout=30).status_code == 204


def test_the_pending_page_and_the_admin_page_name_the_servers_tier(browser: playwright_api.Browser, hub: Hub) -> None:
    bob = sign_in(browser, hub, "bob")
    offered_tiers(bob, hub)
    bob.check("#himalia-tiers input[value=medium]")
    bob.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]", no_wait_after=True)
    # The hub waits up to slow_spawn_timeout (10 s) before it sends the form's page to the pending
    # page; a second page of bob's opens it while the server starts.
    pending = bob.context.new_page()
    for _ in range(50):  # until the hub has the start under way (else: its "not running" page)
        pending.goto(f"{hub.url}/hub/spawn-pending/bob")
        assert pending.url.startswith(f"{hub.url}/hub/spawn-pending/bob"), "the server started before the page opened"
        if pending.locator("#himalia-tier").count():
            break
        pending.wait_for_timeout(200)
    assert pending.locator("#himalia-tier").inner_text() == f"Your server starts on the hardware tier {MEDIUM}."
    pending.screenshot(path=str(ARTIFACTS / "hub-tiers-pending.png"))
    pending.close()  # before the server is ready: two pages signing in to bob's server at once would race
    bob.wait_for_url(f"{hub.url}/user/bob/lab**", timeout=120_000)

    alice = sign_in(browser, hub, "alice")
    alice.goto(f"{hub.url}/hub/admin")
    profile = alice.locator("[data-testid=user-row-profile-used]", has_text=MEDIUM)
    profile.wait_for()
    row = alice.locator("tr", has=profile)
    assert "bob" in row.inner_text()
    alice.screenshot(path=str(ARTIFACTS / "hub-tiers-admin.png"))
    alice.context.close()

    bob.goto(f"{hub.url}/hub/home")
    stopped = bob.evaluate(
        """async () => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
            const headers = {'X-XSRFToken': xsrf};
            return (await fetch('/hub/api/users/bob/server', {method: 'DELETE', headers})).status;
        }"""
    )
    assert stopped in (202, 204)
    bob.context.close()
