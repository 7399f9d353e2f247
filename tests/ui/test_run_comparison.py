"""Two runs side by side in the lab: from a run's tab, "Compare" opens a tab with both runs, the
variable that differs marked, their steps and the notebook they ran."""

import time

from .conftest import Lab, shoot

SETTING = {
    "id": "ui_compare",
    "name": "UI compare",
    "steps": [{"name": "Set", "type": "set_variables", "values": {"done": True}}],
}


def finished_run(lab: Lab, region: str) -> int:
    started = lab.api("POST", f"projects/FRAUD/scenarios/{SETTING['id']}/run", json={"variables": {"region": region}})
    assert started.status_code == 201, started.text
    run_id: int = started.json()["id"]
    for _ in range(120):
        if lab.api("GET", f"projects/FRAUD/scenarios/{SETTING['id']}/runs/{run_id}").json()["state"] == "succeeded":
            return run_id
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not succeed")


def test_a_run_tab_compares_with_another_run(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    saved = admin_lab.api("PUT", f"projects/FRAUD/scenarios/{SETTING['id']}", json={"definition": SETTING})
    assert saved.status_code == 200, saved.text
    first, second = finished_run(admin_lab, "EU"), finished_run(admin_lab, "US")
    page.goto(f"{admin_lab.page_url()}&reset&himalia-run=FRAUD/{SETTING['id']}/{second}")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    tab = page.locator(f".hml-run-page section[data-run='{second}']")
    tab.wait_for(state="visible")
    chooser = tab.get_by_label("Run to compare with")
    chooser.select_option(str(first))
    tab.get_by_role("button", name="Compare").click()
    compared = page.locator(f".hml-compare-page section[data-first='{first}'][data-second='{second}']")
    compared.wait_for(state="visible")
    region = compared.locator(".hml-compare-values tr[data-name='region']")
    assert region.get_attribute("class") == "hml-compare-differs"
    assert region.inner_text().split() == ["region", "EU", "US"]
    assert "Set" in compared.locator(".hml-compare-steps").inner_text()
    assert page.locator(".lm-TabBar-tab", has_text=f"Compare: {SETTING['id']} #{first} ↔ #{second}").count() == 1
    shoot(page, "run-comparison")


def _notebook(source: str) -> dict[str, object]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}],
    }


def test_a_notebook_that_differs_is_drawn_by_nbdime(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    scenario = {
        "id": "ui_nbdime",
        "name": "UI nbdime",
        "steps": [{"name": "Nb", "type": "notebook", "notebook": "nb.ipynb"}],
    }
    runs = []
    for source in ("print('version one')", "print('version two')"):
        body = {"definition": scenario, "notebooks": {"nb.ipynb": _notebook(source)}}
        saved = admin_lab.api("PUT", f"projects/FRAUD/scenarios/{scenario['id']}", json=body)
        assert saved.status_code == 200, saved.text
        started = admin_lab.api("POST", f"projects/FRAUD/scenarios/{scenario['id']}/run", json={})
        assert started.status_code == 201, started.text
        runs.append(started.json()["id"])
        for _ in range(240):  # one run at a time: the second waits for the first
            state = admin_lab.api("GET", f"projects/FRAUD/scenarios/{scenario['id']}/runs/{runs[-1]}").json()["state"]
            if state not in ("queued", "running"):
                break
            time.sleep(0.5)
    first, second = runs
    page.goto(f"{admin_lab.page_url()}&reset&himalia-run=FRAUD/{scenario['id']}/{second}")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    tab = page.locator(f".hml-run-page section[data-run='{second}']")
    tab.wait_for(state="visible")
    tab.get_by_label("Run to compare with").select_option(str(first))
    tab.get_by_role("button", name="Compare").click()
    notebook = page.locator(".hml-compare-page .hml-compare-notebook[data-path='nb.ipynb']")
    notebook.wait_for(state="visible")
    notebook.get_by_role("button", name="Show with nbdime").click()
    drawn = notebook.locator(".hml-nbdime")  # nbdime's NotebookDiffWidget
    drawn.wait_for(state="visible")
    drawn.get_by_text("version two").first.wait_for()
    text = drawn.inner_text()
    assert "version one" in text and "version two" in text, text
    assert drawn.locator(".jp-Cell-diff, .jp-Diff-addedChunk, .cm-merge-b-chunk, [class*='added']").count() > 0
    shoot(page, "run-comparison-nbdime")
