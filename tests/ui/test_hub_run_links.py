"""In hub mode, the link of a report email goes through the hub: its login, the spawn of the
person's server, then their lab, which opens the run."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright import sync_api as playwright_api

from ..hub.idp import DEMO_PASSWORD, free_port
from .conftest import ARTIFACTS
from .test_hub import Hub, hub  # noqa: F401  (the fixture, started with HUB_ENVIRONMENT)
from .test_run_links import FAILING, mailed_link

pytestmark = pytest.mark.ui

MAIL_PORT = free_port()
HUB_ENVIRONMENT = {"HIMALIA_SMTP_HOST": "127.0.0.1", "HIMALIA_SMTP_PORT": str(MAIL_PORT)}


@pytest.fixture(scope="module", autouse=True)
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo's mail sink, which the hub's service mails through (``HUB_ENVIRONMENT``)."""
    folder = tmp_path_factory.mktemp("hub-mail")
    sink = subprocess.Popen(
        [sys.executable, "-m", "himalia.demo.mailsink", "--port", str(MAIL_PORT), "--folder", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield folder
    sink.terminate()
    sink.wait(10)


def test_a_report_link_signs_in_spawns_and_opens_the_run(
    browser: playwright_api.Browser,
    hub: Hub,  # noqa: F811
    mail: Path,
) -> None:
    token = hub.himalia("token", "create", "--user", "alice").strip()
    headers = {"Authorization": f"token {token}"}
    scenario = f"{hub.service_api}/projects/FRAUD/scenarios/{FAILING['id']}"
    saved = requests.put(scenario, headers=headers, json={"definition": FAILING}, timeout=30)
    assert saved.status_code == 200, saved.text
    started = requests.post(f"{scenario}/run", headers=headers, json={}, timeout=30)
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    link = mailed_link(mail, run_id)
    assert link == f"{hub.url}/hub/user-redirect/lab?himalia-run=FRAUD/{FAILING['id']}/{run_id}"

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(link)  # no session yet: the hub's login first
    if not page.locator("input[name=login]").count():
        page.locator("a:has-text('Sign in'), a#login-main, .btn-jupyter").first.click()
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{hub.url}/**", timeout=120_000)
    if "/hub/spawn" in page.url:  # no server yet: the tier form, then on to the lab
        page.locator("#himalia-tiers input[name=tier]").first.check()
        page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(f"{hub.url}/user/alice/lab**", timeout=120_000)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=120_000)
    tab = page.locator(f".hml-run-page section[data-run='{run_id}']")
    tab.wait_for(state="visible", timeout=60_000)
    page.wait_for_function(
        f"document.querySelector(\".hml-run-page section[data-run='{run_id}']\").dataset.state === 'failed'"
    )
    assert "Boom" in tab.inner_text()
    page.screenshot(path=str(ARTIFACTS / "hub-run-link-opened.png"))
    context.close()
