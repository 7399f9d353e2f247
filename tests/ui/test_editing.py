"""Editing from the lab: a scenario's YAML in an editor tab (a line-numbered refusal, then a save),
deleting a scenario, defining a dataset, and the mark of a notebook's parameters cell."""

from .conftest import Lab, choose_project, code_cell, expand, open_himalia, put_notebook, shoot

EDITABLE = {
    "id": "ui_editable",
    "name": "UI editable",
    "active": False,
    "steps": [{"name": "Check merchants", "type": "run_checks", "dataset": "merchants"}],
    "triggers": [{"type": "time", "schedule": "daily at 02:00"}],
}


def _end_of_line(page, editor, text: str) -> None:  # type: ignore[no-untyped-def]
    editor.locator(".cm-line", has_text=text).click()
    page.keyboard.press("End")


def test_edit_a_scenario_yaml_then_delete_it(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    saved = admin_lab.api("PUT", "projects/FRAUD/scenarios/ui_editable", json={"definition": EDITABLE})
    assert saved.status_code == 200, saved.text
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    scenarios = expand(sidebar, "Scenarios")
    scenarios.locator("[data-scenario='ui_editable'] .hml-row-main").click()
    details = scenarios.locator("[data-scenario-details='ui_editable']")
    details.get_by_role("button", name="Edit YAML").click()

    editor = page.locator(".hml-scenario-editor")
    editor.locator(".cm-line", has_text="id: ui_editable").wait_for()
    assert page.locator(".lm-TabBar-tab", has_text="ui_editable.yaml").count() == 1
    lines = editor.locator(".cm-content").inner_text().splitlines()
    schedule_line = next(i for i, line in enumerate(lines, start=1) if "schedule: daily at 02:00" in line)

    _end_of_line(page, editor, "name: UI editable")
    page.keyboard.type(", edited")
    _end_of_line(page, editor, "schedule: daily at 02:00")
    page.keyboard.type(" or so")
    editor.get_by_role("button", name="Save").click()
    refusal = editor.locator(".hml-editor-refusal")
    refusal.wait_for()
    assert refusal.locator(".hml-editor-line").inner_text() == f"Line {schedule_line}"
    assert refusal.locator(".hml-editor-message").inner_text().startswith("triggers[0].schedule: ")
    assert "daily at 02:00 or so" in editor.locator(".cm-content").inner_text()  # the text is kept
    assert admin_lab.api("GET", "projects/FRAUD/scenarios/ui_editable").json()["revision"] == 1
    shoot(page, "scenario-editor-refusal")

    _end_of_line(page, editor, "daily at 02:00 or so")
    for _ in " or so":
        page.keyboard.press("Backspace")
    page.keyboard.press("Control+s")  # the editor's own Save, not the lab's document save
    editor.locator(".hml-editor-bar [role='status']", has_text="Saved as revision 2.").wait_for()
    assert editor.locator(".hml-editor-refusal").count() == 0
    described = admin_lab.api("GET", "projects/FRAUD/scenarios/ui_editable").json()
    assert (described["name"], described["revision"]) == ("UI editable, edited", 2)
    details.locator("h3", has_text="UI editable, edited").wait_for()  # the panel shows the new revision
    shoot(page, "scenario-editor-saved")

    details.get_by_role("button", name="Delete…").click()
    dialog = page.locator(".jp-Dialog")
    assert "Delete scenario UI editable, edited (ui_editable)?" in dialog.locator(".jp-Dialog-header").inner_text()
    assert "history of its 0 run(s)" in dialog.inner_text()
    shoot(page, "scenario-delete-dialog")
    dialog.get_by_role("button", name="Delete").click()
    scenarios.locator("[data-scenario='ui_editable']").wait_for(state="detached")
    assert details.count() == 0
    assert admin_lab.api("GET", "projects/FRAUD/scenarios/ui_editable").status_code == 404
    assert scenarios.locator("[data-scenario='daily_fraud_scoring']").count() == 1


def test_define_a_dataset_from_data_quality(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    quality = expand(sidebar, "Data quality")
    quality.locator("[data-dataset='merchants']").wait_for()
    quality.get_by_role("button", name="New dataset").click()
    form = quality.locator("form[aria-label='New dataset in FRAUD']")
    form.get_by_role("button", name="Create").click()
    assert form.locator(".hml-field-error", has_text="Name the dataset.").count() == 1  # checked before sending

    form.locator("input[name='name']").fill("merchants_ui")
    form.locator("select[name='connection']").select_option("warehouse")
    form.locator("input[name='table']").fill("no_such_table")
    form.get_by_role("button", name="Create").click()
    form.locator(".hml-field-error, .hml-error").first.wait_for()  # the server's refusal: no such table
    assert "no_such_table" in form.inner_text()
    shoot(page, "new-dataset-refused")

    form.locator("input[name='table']").fill("merchants")
    form.get_by_role("button", name="Create").click()
    created = quality.locator("[data-dataset='merchants_ui']")
    created.wait_for()
    assert form.count() == 0
    assert created.locator(".hml-row-main").get_attribute("aria-expanded") == "true"
    shoot(page, "new-dataset-created")
    described = admin_lab.api("GET", "projects/FRAUD/datasets/merchants_ui").json()
    assert (described["connection"], described["table"], described["kind"]) == ("warehouse", "merchants", "table")
    assert admin_lab.api("DELETE", "projects/FRAUD/datasets/merchants_ui").status_code == 204


def test_the_parameters_cell_is_marked(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    cells = [
        code_cell("day: str = '2018-06-01'", ["parameters"]),
        code_cell("threshold = 0.5"),
        code_cell("print(day)"),
    ]
    put_notebook(admin_lab, "ui-parameters.ipynb", cells)
    open_himalia(page, admin_lab)
    page.goto(admin_lab.page_url("lab/tree/ui-parameters.ipynb"))
    cells = page.locator(".jp-NotebookPanel .jp-Cell")
    cells.nth(2).wait_for()

    def marked() -> list[bool]:
        return [("hml-parameters-cell" in (cells.nth(i).get_attribute("class") or "")) for i in range(3)]

    page.wait_for_function(
        "() => document.querySelector('.jp-NotebookPanel .jp-Cell')?.classList.contains('hml-parameters-cell')"
    )
    assert marked() == [True, False, False]
    label = cells.nth(0).locator(".jp-InputArea-prompt").evaluate("n => getComputedStyle(n, '::after').content")
    assert label == '"parameters"'
    assert cells.nth(1).locator(".jp-InputArea-prompt").evaluate("n => getComputedStyle(n, '::after').content") in (
        "none",
        "normal",
    )
    shoot(page, "parameters-cell-marked")

    # Tagging another cell moves the mark (papermill reads one parameters cell).
    cells.nth(1).locator(".jp-InputArea-prompt").click(button="right")
    page.locator(".lm-Menu-item", has_text="Mark as Parameters Cell").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-NotebookPanel .jp-Cell')[1].classList.contains('hml-parameters-cell')"
    )
    assert marked() == [False, True, False]
    shoot(page, "parameters-cell-moved")


def test_a_reader_gets_no_editing_controls(page, reader_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, reader_lab)
    choose_project(sidebar, "FRAUD")
    scenarios = expand(sidebar, "Scenarios")
    scenarios.locator("[data-scenario='daily_fraud_scoring'] .hml-row-main").click()
    details = scenarios.locator("[data-scenario-details='daily_fraud_scoring']")
    details.locator("h3").wait_for()
    assert details.get_by_role("button", name="Edit YAML").count() == 0
    assert details.get_by_role("button", name="Delete…").count() == 0
    quality = expand(sidebar, "Data quality")
    quality.locator("[data-dataset='merchants']").wait_for()
    assert quality.get_by_role("button", name="New dataset").count() == 0
    shoot(page, "reader-no-editing")
    # The API refuses the reader all the same.
    assert reader_lab.api("DELETE", "projects/FRAUD/scenarios/daily_fraud_scoring").status_code == 403
    yaml = reader_lab.api("GET", "projects/FRAUD/scenarios/daily_fraud_scoring/export").text
    assert reader_lab.api("PUT", "projects/FRAUD/scenarios/daily_fraud_scoring", json={"yaml": yaml}).status_code == 403
    new = {"name": "by_reader", "connection": "warehouse", "table": "merchants"}
    assert reader_lab.api("POST", "projects/FRAUD/datasets", json=new).status_code == 403
