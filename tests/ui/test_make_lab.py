"""`make lab` as a newcomer runs it: the Makefile's own recipe, from a clone's folder, with its relative
HIMALIA_HOME; then "Run now" in the panel runs the demo scenario in the lab's control plane.

Its install steps are taken as done (``make -o install -o share-python``: this test session runs in
that environment); everything else is the recipe's, so the test follows the Makefile when it changes.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, Lab, _wait_until_ready, choose_project, expand, open_himalia, shoot

pytestmark = pytest.mark.ui

REPOSITORY = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: As the README and the Makefile have it: relative to the clone, where `make lab` runs.
LAB_HOME = ".himalia-demo"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def make_lab() -> Iterator[tuple[Lab, Path]]:
    """`make lab LAB_PORT=… LAB_SMTP_PORT=…` in a folder holding the clone's notebooks and scenarios.

    The folder is one every account may pass through (notebook steps run as their people's accounts
    when the tests run as root), as a clone in a home folder is."""
    base = Path(tempfile.mkdtemp(prefix="himalia-ui-make-lab-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    clone = base / "clone"
    clone.mkdir()
    for folder in ("notebooks", "scenarios"):
        shutil.copytree(REPOSITORY / folder, clone / folder)
    token = "ui-test-make-lab"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("HIMALIA_", "JUPYTER"))},
        "JUPYTER_TOKEN": token,
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "lab-workspaces"),
    }
    page_config = base / "jupyter-config" / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True)
    page_config.write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port = _free_port()
    command = ["make", "--no-print-directory", "-f", str(REPOSITORY / "Makefile"), "-o", "install", "-o"]
    command += ["share-python", "lab", f"BIN={BIN}", f"LAB_HOME={LAB_HOME}", f"LAB_PORT={port}"]
    command += [f"LAB_SMTP_PORT={_free_port()}"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "make-lab.log"
    with log.open("wb") as output:
        make = subprocess.Popen(
            command, cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(url=f"http://127.0.0.1:{port}/", token=token, log=log)
    try:
        _wait_until_ready(lab, make)
        yield lab, clone
    finally:
        os.killpg(make.pid, signal.SIGTERM)  # make, its shell, the mail sink and jupyter lab
        try:
            make.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_run_now_in_the_lab_that_make_lab_starts(page, make_lab: tuple[Lab, Path]) -> None:  # type: ignore[no-untyped-def]
    lab, clone = make_lab
    sidebar = open_himalia(page, lab)
    choose_project(sidebar, "FRAUD")
    scenarios = expand(sidebar, "Scenarios")
    row = scenarios.locator("[data-scenario='daily_fraud_scoring']")
    row.wait_for()
    row.locator(".hml-row-main").click()
    scenarios.get_by_role("button", name="Run now").click()
    scenarios.get_by_role("button", name="Start run").click()

    run = page.locator(".hml-run-page section[data-run]")  # a started run opens in the main area
    run.wait_for()
    run.locator("xpath=self::*[@data-state='succeeded' or @data-state='warning' or @data-state='failed']").wait_for(
        timeout=180_000
    )
    shoot(page, "make-lab-run-finished")
    assert run.get_attribute("data-state") == "succeeded", run.inner_text()
    assert "[Score] succeeded" in run.locator("pre.hml-log").inner_text()

    # The lab's own control plane ran it (not a CLI process), in the home the Makefile names, and its
    # email reached the Makefile's mail sink in that home's mail folder.
    run_id = run.get_attribute("data-run")
    described = lab.api("GET", f"projects/FRAUD/scenarios/daily_fraud_scoring/runs/{run_id}").json()
    assert described["state"] == "succeeded"
    mail = clone / LAB_HOME / "mail"
    deadline = time.monotonic() + 60
    while not list(mail.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.5)
    messages = list(mail.glob("*.eml"))
    assert messages, f"no email in {mail}: {lab.log.read_text()[-3000:]}"
    assert any("succeeded" in message.read_text(errors="replace") for message in messages)
