"""`make demo` as the Makefile starts it, every port moved off its default: people sign in at
http://127.0.0.1:HUB_PORT and at http://localhost:HUB_PORT alike, through the dev provider.

Its install steps are taken as done (``make -o install -o share-python``); the rest is the
recipe's own: the port check, the seeding, the provider with its redirect URIs following
HUB_PORT, the mail sink, JupyterHub with its proxy and the Himalia service.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright import sync_api as playwright_api

from ..hub.idp import DEMO_PASSWORD, free_port
from .conftest import ARTIFACTS, stop_process_group

pytestmark = pytest.mark.ui

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PORT_VARIABLES = ("HUB_PORT", "HUB_API_PORT", "HUB_PROXY_API_PORT", "HUB_SERVICE_PORT", "HUB_SMTP_PORT", "IDP_PORT")


@pytest.fixture(scope="module")
def demo_hub_port() -> Iterator[int]:
    """`make demo` with free ports and its state in a folder other accounts may pass through; the hub's port."""
    base = Path(tempfile.mkdtemp(prefix="himalia-ui-make-demo-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    ports = {name: free_port() for name in PORT_VARIABLES}
    env = {name: value for name, value in os.environ.items() if not name.startswith(("HIMALIA_", "JUPYTER", "IDP_"))}
    command = ["make", "--no-print-directory", "-o", "install", "-o", "share-python", "demo", f"BIN={BIN}"]
    command += [f"HUB_STATE={base / 'hub'}", *(f"{name}={port}" for name, port in ports.items())]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "make-demo.log"
    with log.open("wb") as output:
        make = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    service = f"http://127.0.0.1:{ports['HUB_PORT']}/services/himalia/himalia/api/v1/openapi.json"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(service, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if make.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make demo did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield ports["HUB_PORT"]
    finally:
        stop_process_group(make, 60)  # make, its shell, the provider, the mail sink, the hub
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_people_sign_in_at_either_loopback_name(browser: playwright_api.Browser, demo_hub_port: int, host: str) -> None:
    hub = f"http://{host}:{demo_hub_port}"
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{hub}/hub/oauth_login")
        page.wait_for_selector("input[name=login]")
        assert "Himalia dev sign-in" in page.title()
        page.fill("input[name=login]", "bob")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{hub}/hub/**")
        assert "oauth_callback" not in page.url
        # Signed in at the hub on this host: its API knows who the cookie belongs to.
        user = page.evaluate(
            """async () => {
                const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.slice(6) ?? '';
                return (await fetch('/hub/api/user', {headers: {'X-XSRFToken': xsrf}})).json();
            }"""
        )
        assert user["name"] == "bob", user
    finally:
        page.screenshot(path=str(ARTIFACTS / f"make-demo-sign-in-{host}.png"))
        context.close()
