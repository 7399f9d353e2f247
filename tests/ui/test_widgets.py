"""The kernel client's widgets in JupyterLab: a notebook that shows a dataset and its own
parameters form, run in the lab, renders them with the lab's widget manager."""

import contextlib

from playwright import sync_api as playwright_api

from .conftest import Lab, code_cell, open_himalia, palette, put_notebook, shoot


def test_a_notebook_shows_a_dataset_and_its_parameters_form(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    cells = [
        code_cell("threshold: float = 0.8\nregion: str = 'eu'", ["parameters"]),
        code_cell("import himalia\nhimalia.dataset('transactions_2018', project='FRAUD')"),
        code_cell("himalia.parameters_form()"),
    ]
    put_notebook(admin_lab, "ui-widgets.ipynb", cells)
    open_himalia(page, admin_lab)
    page.goto(admin_lab.page_url("lab/tree/ui-widgets.ipynb"))
    page.locator(".jp-NotebookPanel .jp-Cell").nth(2).wait_for()
    choose = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    with contextlib.suppress(playwright_api.TimeoutError):  # a lab without a preferred kernel asks once
        choose.click(timeout=10_000)
    palette(page, "Run All Cells")

    card = page.locator(".jp-OutputArea-output .widget-html .himalia-dataset[data-dataset='transactions_2018']")
    card.wait_for(timeout=90_000)  # the lab's widget manager rendered the kernel's widget
    assert "13 columns" in card.inner_text()
    assert page.locator(".jupyter-widgets button", has_text="Run checks").count() == 1
    form = page.locator(".jp-OutputArea-output .widget-vbox").last
    threshold = form.locator(".widget-text", has_text="threshold: float").locator("input")
    threshold.wait_for(timeout=60_000)
    assert threshold.input_value() == "0.8"
    threshold.fill("0.65")
    threshold.press("Enter")
    form.get_by_role("button", name="Apply").click()
    form.locator(".widget-html", has_text="set threshold = 0.65").wait_for()
    shoot(page, "notebook-widgets")
