"""`make lab` as a newcomer runs it: the Makefile's own recipe, from a clone's folder, with its relative
HIMALIA_HOME; then "Run now" in the panel runs the demo scenario in the lab's control plane.

Its install steps are taken as done (``make -o install -o share-python``: this test session runs in
that environment); everything else is the recipe's, so the test follows the Makefile when it changes.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Lab, MakeLab, choose_project, expand, open_himalia, shoot

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def make_lab() -> Iterator[tuple[Lab, Path]]:
    launcher = MakeLab("make-lab")
    try:
        yield launcher.start(), launcher.clone
    finally:
        launcher.remove()


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
    mail = clone / MakeLab.home / "mail"
    deadline = time.monotonic() + 60
    while not list(mail.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.5)
    messages = list(mail.glob("*.eml"))
    assert messages, f"no email in {mail}: {lab.log.read_text()[-3000:]}"
    assert any("succeeded" in message.read_text(errors="replace") for message in messages)
