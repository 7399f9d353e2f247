"""Retention as people see it in the lab: a run's tab pins it (and says when retention purged a
run's artifacts), and the project's details say how much space the project takes."""

from .conftest import Lab, choose_project, open_himalia, shoot
from .test_run_comparison import SETTING, finished_run


def test_a_run_is_pinned_from_its_tab_and_the_project_says_its_space(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    saved = admin_lab.api("PUT", f"projects/FRAUD/scenarios/{SETTING['id']}", json={"definition": SETTING})
    assert saved.status_code == 200, saved.text
    run = finished_run(admin_lab, "EU")
    page.goto(f"{admin_lab.page_url()}&reset&himalia-run=FRAUD/{SETTING['id']}/{run}")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    tab = page.locator(f".hml-run-page section[data-run='{run}']")
    tab.wait_for(state="visible")
    tab.get_by_role("button", name="Pin", exact=True).click()
    tab.get_by_role("button", name="Unpin").wait_for()
    described = admin_lab.api("GET", f"projects/FRAUD/scenarios/{SETTING['id']}/runs/{run}").json()
    assert described["pinned"] is True and described["purged_at"] is None
    tab.get_by_role("button", name="Unpin").click()
    tab.get_by_role("button", name="Pin", exact=True).wait_for()
    assert admin_lab.api("GET", f"projects/FRAUD/scenarios/{SETTING['id']}/runs/{run}").json()["pinned"] is False

    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    space = sidebar.locator(".hml-project-space")
    space.wait_for()
    assert space.inner_text().endswith(("bytes", "kB", "MB", "GB")), space.inner_text()
    assert "Run artifacts" in (space.get_attribute("title") or "")
    shoot(page, "project-space")
