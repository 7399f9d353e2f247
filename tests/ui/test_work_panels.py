"""Scenarios, data quality, connections and variables, clicked through on the demo project."""

import json
import re
import shutil
import sqlite3

from himalia.demo.seed import data_folder

from .conftest import Lab, choose_project, expand, open_himalia, shoot


def test_run_the_demo_scenario_with_a_changed_parameter(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    scenarios = expand(sidebar, "Scenarios")
    row = scenarios.locator("[data-scenario='daily_fraud_scoring']")
    row.wait_for()
    assert row.locator("input[aria-label='Active']").is_checked()
    row.locator(".hml-row-main").click()

    scenarios.get_by_role("button", name="Run now").click()
    threshold = scenarios.get_by_label("threshold")
    threshold.fill("0.65")
    shoot(page, "scenarios-run-form")
    scenarios.get_by_role("button", name="Start run").click()

    run = page.locator(".hml-run-page section[data-run]")  # a started run opens in the main area
    run.wait_for()
    # Live status: no reload, no click, until the run ends.
    run.locator("xpath=self::*[@data-state='succeeded' or @data-state='warning' or @data-state='failed']").wait_for(
        timeout=180_000
    )
    shoot(page, "scenarios-run-finished")
    assert run.get_attribute("data-state") == "succeeded", run.inner_text()
    assert "[Score] succeeded" in run.locator("pre.hml-log").inner_text()
    ran_on = run.locator("[data-step='Score'] .hml-step-environment").inner_text()  # the reproducibility record
    assert re.fullmatch(r"Ran on Python 3\.\d+\.\d+ · python3 · LocalExecutor · \d+ packages", ran_on), ran_on

    run_id = run.get_attribute("data-run")
    described = admin_lab.api("GET", f"projects/FRAUD/scenarios/daily_fraud_scoring/runs/{run_id}").json()
    assert described["parameters"] == {"threshold": 0.65}
    assert described["requested_by"]

    run.get_by_role("button", name="Open report").click()
    report = page.locator(".jp-MainAreaWidget iframe")
    report.wait_for()
    assert f"runs/{run_id}/report" in (report.get_attribute("src") or "")
    page.locator(".lm-TabBar-tab", has_text=f"Run: daily_fraud_scoring #{run_id}").click()  # back to the run's tab
    run.get_by_role("button", name="Open notebook").click()
    page.locator(".jp-NotebookPanel").wait_for()
    shoot(page, "scenarios-artifacts")


def test_a_check_turns_red_when_the_data_breaks(page, admin_lab: Lab, demo_root) -> None:  # type: ignore[no-untyped-def]
    _, env = demo_root
    warehouse = data_folder(env["HIMALIA_HOME"]) / "warehouse.sqlite"
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    quality = expand(sidebar, "Data quality")
    merchants = quality.locator("[data-dataset='merchants']")
    merchants.wait_for()
    merchants.locator(".hml-row-main").click()
    merchants.get_by_role("button", name="Run checks").click()
    check = merchants.locator("[data-check='Over 10k records']")
    check.locator(".hml-badge", has_text="OK").wait_for()
    shoot(page, "data-quality-ok")

    backup = warehouse.with_suffix(".backup")
    shutil.copy2(warehouse, backup)
    try:
        with sqlite3.connect(warehouse) as database:
            database.execute("DELETE FROM merchants WHERE rowid > 5000")
        merchants.get_by_role("button", name="Run checks").click()
        check.locator(".hml-badge", has_text="ERROR").wait_for()
        summary = merchants.locator(".hml-dq-summary")
        assert "ERROR" in summary.inner_text()
        # The history of the metric the range check watches, drawn by the lab's Vega renderer:
        # the check's bound as a rule with its label, the value after the break in the error colour.
        chart = merchants.locator(".hml-chart-box[data-metric='record_count']")
        assert chart.get_attribute("data-bounds") == "min 10\u202f000"
        chart.locator(".hml-chart svg.marks").wait_for()
        assert chart.locator("g.mark-rule.hml_hard_min_rule_marks line").count() == 1
        assert chart.locator("g.hml_hard_min_label_marks text").text_content() == "min 10\u202f000"
        error_colour = page.evaluate("getComputedStyle(document.body).getPropertyValue('--jp-error-color1').trim()")
        chart.locator("g.hml_points_marks path").last.wait_for()
        fills = chart.locator("g.hml_points_marks path").evaluate_all("nodes => nodes.map(n => n.getAttribute('fill'))")
        assert fills[-1] == error_colour and len(fills) >= 2, (fills, error_colour)
        chart.scroll_into_view_if_needed()
        shoot(page, "data-quality-error")
    finally:
        shutil.move(backup, warehouse)


def test_without_the_vega_renderer_the_chart_says_so(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    # The lab's page as a lab with @jupyterlab/vega5-extension disabled serves it.
    def without_vega(route) -> None:  # type: ignore[no-untyped-def]
        html = route.fetch().text()
        start = html.index(">", html.index('id="jupyter-config-data"')) + 1
        end = html.index("</script>", start)
        config = json.loads(html[start:end])
        config["disabledExtensions"] = [*config.get("disabledExtensions", []), "@jupyterlab/vega5-extension"]
        route.fulfill(body=html[:start] + json.dumps(config) + html[end:], content_type="text/html")

    page.route("**/lab?*", without_vega)
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    merchants = expand(sidebar, "Data quality").locator("[data-dataset='merchants']")
    merchants.locator(".hml-row-main").click()
    merchants.get_by_role("button", name="Run checks").click()
    missing = merchants.locator(".hml-chart-box[data-metric] .hml-chart-missing")
    missing.wait_for()
    assert "@jupyterlab/vega5-extension" in missing.inner_text()
    assert merchants.locator(".hml-chart-box svg").count() == 0
    shoot(page, "data-quality-no-vega")


def test_connections_test_and_snippet(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    connections = expand(sidebar, "Connections")
    warehouse = connections.locator("[data-connection='warehouse']")
    warehouse.wait_for()
    warehouse.locator(".hml-row-main").click()
    warehouse.get_by_role("button", name="Test").click()
    result = warehouse.locator(".hml-test-result")
    result.wait_for()
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    shoot(page, "connections")

    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    warehouse.get_by_role("button", name="Insert snippet").click()
    page.locator(".jp-NotebookPanel .jp-CodeCell", has_text='himalia.connection("warehouse")').wait_for()
    shoot(page, "connections-snippet")


def test_variables_editor_validates_and_saves(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    variables = expand(sidebar, "Variables")
    editor = variables.get_by_role("textbox", name="Project variables", exact=True)
    editor.wait_for()
    assert '"min_transactions": 1000' in editor.input_value()
    editor.fill('{"min_transactions": 1000,\n "report_title": }')
    error = variables.locator(".hml-field-error")
    error.wait_for()
    assert error.inner_text().startswith("Line 2, column 18")
    editor.fill('{"min_transactions": 2000, "report_title": "Fraud report"}')
    variables.get_by_role("button", name="Save").first.click()
    variables.locator(".hml-success", has_text="Saved.").first.wait_for()
    assert admin_lab.api("GET", "projects/FRAUD/variables").json()["variables"]["min_transactions"] == 2000
    instance = variables.get_by_role("textbox", name="Instance variables", exact=True)
    assert '"company": "Himalia Demo"' in instance.input_value()
    shoot(page, "variables")


def test_a_reader_sees_no_edit_controls(page, reader_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, reader_lab)
    projects = expand(sidebar, "Projects")
    projects.locator("[data-project='FRAUD']").wait_for()
    assert projects.get_by_role("button", name="New project").count() == 0
    choose_project(sidebar, "FRAUD")
    details = projects.locator("section[aria-label='Project FRAUD']")
    assert details.locator("form[aria-label='Grant']").count() == 0
    assert "write_content" not in details.locator(".hml-my-permissions").inner_text()
    shoot(page, "reader-projects")

    scenarios = expand(sidebar, "Scenarios")
    row = scenarios.locator("[data-scenario='daily_fraud_scoring']")
    row.wait_for()
    assert row.locator("input[aria-label='Active']").is_disabled()
    row.locator(".hml-row-main").click()
    assert scenarios.get_by_role("button", name="Run now").count() == 0

    quality = expand(sidebar, "Data quality")
    quality.locator("[data-dataset='merchants']").wait_for()
    quality.locator("[data-dataset='merchants'] .hml-row-main").click()
    assert quality.get_by_role("button", name="Compute").count() == 0
    assert quality.get_by_role("button", name="Run checks").count() == 0

    variables = expand(sidebar, "Variables")
    editor = variables.get_by_role("textbox", name="Project variables", exact=True)
    editor.wait_for()
    assert editor.get_attribute("readonly") is not None
    assert variables.get_by_role("button", name="Save").count() == 0
    shoot(page, "reader-panels")

    # The hidden controls are not the protection: the API refuses the reader all the same.
    refused = reader_lab.api("POST", "projects/FRAUD/scenarios/daily_fraud_scoring/run", json={})
    assert refused.status_code == 403


def test_schedule_a_notebook_from_its_toolbar(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    page.locator(".jp-SideBar [data-id='filebrowser']").click()
    listing = page.locator(".jp-DirListing-content")
    listing.get_by_text("notebooks", exact=True).dblclick()
    listing.get_by_text("score.ipynb", exact=True).dblclick()
    notebook = page.locator(".jp-NotebookPanel")
    notebook.locator(".jp-Cell").first.wait_for()

    # The parameters cell is already tagged: the context menu shows the toggle on.
    parameters = notebook.locator(".jp-Cell.jp-CodeCell", has_text="threshold").first
    parameters.locator(".jp-InputPrompt").click()
    parameters.locator(".jp-InputPrompt").click(button="right")
    toggle = page.locator(".lm-Menu-item[data-command='himalia:mark-parameters-cell']")
    assert "lm-mod-toggled" in (toggle.get_attribute("class") or "")
    page.keyboard.press("Escape")

    notebook.locator(".jp-Toolbar [data-command='himalia:schedule-notebook']").click()
    form = page.locator(".jp-Dialog .hml-schedule-form")
    form.wait_for()
    form.locator("input[name='id']").fill("score_nightly")
    form.locator("input[name='schedule']").fill("daily at 03:30")
    form.locator("input[name='timezone']").fill("Europe/Paris")
    form.get_by_label("threshold").fill("0.9")
    files = form.locator(".hml-schedule-files")  # the server's preview of what the save snapshots
    # the folder is notebooks/ (README.md, prepare.ipynb, sales/…): the sentence names its first files
    files.get_by_text(re.compile(r"^It runs beside \d+ files? of its folder .*prepare\.ipynb")).wait_for()
    shoot(page, "schedule-dialog")
    page.locator(".jp-Dialog").get_by_role("button", name="Schedule").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    scenarios = expand(sidebar, "Scenarios")
    scenarios.locator("[data-scenario='score_nightly']").wait_for()

    saved = admin_lab.api("GET", "projects/FRAUD/scenarios/score_nightly")
    assert saved.status_code == 200, saved.text
    definition = saved.json()["definition"]
    assert [(step["type"], step["notebook"]) for step in definition["steps"]] == [("notebook", "notebooks/score.ipynb")]
    assert definition["steps"][0]["parameters"]["threshold"] == 0.9
    assert saved.json()["next_fire_at"] is not None
    assert saved.json()["files"]["files"] >= 1, "the notebook's folder is snapshotted with it"
