"""The Operations tab and the run page in the main area: the board of every scenario the person
may see, its fires as coloured cells that open their run, and runs opened from the sidebar."""

import time

from .conftest import Lab, choose_project, expand, open_himalia, palette, shoot
from .test_themes import _luminance, _theme

RAISES = "def variables(current):\n    raise ValueError('no')\n"
PASSES = "def variables(current):\n    return {}\n"
DAILY = {"type": "time", "schedule": "daily at 05:00", "timezone": "Europe/Paris"}


def _scenario(lab: Lab, project: str, scenario: str, code: str) -> int:
    """Save a one-step scenario with a daily trigger, run it and wait until it ends; its run's id."""
    definition = {
        "id": scenario,
        "name": scenario.replace("_", " ").capitalize(),
        "triggers": [DAILY],
        "steps": [{"name": "Vars", "type": "set_variables", "code": code}],
    }
    saved = lab.api("PUT", f"projects/{project}/scenarios/{scenario}", json={"definition": definition})
    assert saved.status_code == 200, saved.text
    started = lab.api("POST", f"projects/{project}/scenarios/{scenario}/run", json={})
    assert started.status_code == 201, started.text
    run_id = int(started.json()["id"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = lab.api("GET", f"projects/{project}/scenarios/{scenario}/runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return run_id
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} of {scenario} did not end")


def test_the_board_shows_fires_that_open_their_runs(page, admin_lab: Lab, reader_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    created = admin_lab.api("POST", "projects", json={"key": "OPSX", "name": "Operations only"})
    assert created.status_code in (201, 409), created.text  # 409: a rerun of the test in one session
    failed = _scenario(admin_lab, "FRAUD", "ops_red", RAISES)
    succeeded = _scenario(admin_lab, "FRAUD", "ops_green", PASSES)
    hidden = _scenario(admin_lab, "OPSX", "ops_hidden", PASSES)

    sidebar = open_himalia(page, admin_lab)
    palette(page, "Himalia: Open Operations")
    board = page.locator(".hml-ops-page")
    board.wait_for(state="visible")
    red = board.locator(f"tr[data-project='FRAUD'][data-scenario='ops_red'] .hml-ops-failed[data-run='{failed}']")
    green = board.locator(f"tr[data-scenario='ops_green'] .hml-ops-succeeded[data-run='{succeeded}']")
    red.wait_for()
    green.wait_for()
    assert board.locator(f"tr[data-project='OPSX'] [data-run='{hidden}']").count() == 1, "an admin sees every project"
    tooltip = red.get_attribute("title") or ""
    assert f"Run #{failed}" in tooltip and "Failed" in tooltip, tooltip
    assert "UTC" in tooltip, tooltip
    row = board.locator("tr[data-scenario='ops_red']")
    assert "daily at 05:00" in row.inner_text() and "Europe/Paris" in row.inner_text()
    assert "failed" in board.locator(".hml-ops-summary").inner_text()
    shoot(page, "operations-board")
    _theme(page, "JupyterLab Dark")
    try:
        page.locator("#jupyterlab-splash").wait_for(state="detached")  # the lab's splash while it restyles
        background = board.evaluate("node => getComputedStyle(node).backgroundColor")
        text = row.locator(".hml-name").evaluate("node => getComputedStyle(node).color")
        assert _luminance(background) < 0.2 < _luminance(text), (background, text)
        shoot(page, "operations-board-dark")
    finally:
        _theme(page, "JupyterLab Light")

    red.click()
    run_page = page.locator(f".hml-run-page section[data-run='{failed}']")
    run_page.wait_for(state="visible")
    page.wait_for_function(
        f"document.querySelector(\".hml-run-page section[data-run='{failed}']\").dataset.state === 'failed'"
    )
    assert "Vars" in run_page.inner_text()
    shoot(page, "operations-run-page")

    # In the sidebar, a run opens the same main-area page (one tab per run), not a panel of its own.
    choose_project(sidebar, "FRAUD")
    scenarios = expand(sidebar, "Scenarios")
    scenarios.locator("[data-scenario='ops_green'] .hml-row-main").click()
    scenarios.locator(f"[data-run-id='{succeeded}'] .hml-row-main").click()
    page.locator(f".hml-run-page section[data-run='{succeeded}'][data-state='succeeded']").wait_for(state="visible")
    assert sidebar.locator("section[data-run]").count() == 0
    scenarios.locator(f"[data-run-id='{succeeded}'] .hml-row-main").click()
    assert page.locator(f".hml-run-page section[data-run='{succeeded}']").count() == 1
    # From the sidebar, the Operations button brings the one board back.
    sidebar.locator(".hml-open-operations").click()
    board.wait_for(state="visible")
    assert page.locator(".hml-ops-page").count() == 1

    # A reader sees the projects they may read, and no other.
    reader = open_himalia(page, reader_lab)
    reader.locator(".hml-open-operations").click()
    readers_board = page.locator(".hml-ops-page")
    readers_board.locator(f"tr[data-scenario='ops_red'] .hml-ops-failed[data-run='{failed}']").wait_for()
    assert readers_board.locator("tr[data-project='OPSX']").count() == 0
    projects = readers_board.get_by_label("Project").locator("option").all_inner_texts()
    assert "FRAUD" in projects and "OPSX" not in projects, projects
    seen = reader_lab.api("GET", "board", params={"since": "24h"}).json()
    assert {scenario["project"] for scenario in seen["scenarios"]} == {"FRAUD"}
    shoot(page, "operations-reader")
