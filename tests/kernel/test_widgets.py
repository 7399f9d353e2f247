"""The kernel client's views, in a real kernel (nbclient): a dataset's card, checks and a scenario
run with their progress, and the parameters form, as the widgets' state the kernel sent over its
comms and as the HTML that stands in for them outside JupyterLab."""

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from himalia.kernel import client as kernel_client
from himalia.kernel import widgets

from ..conftest import LiveAPI
from ..scenarios.conftest import add_row_checks, saved, start_engine

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture
def kernel_of(api: LiveAPI, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run cells in a real kernel that sees the platform as ``role`` in ALPHA."""

    def execute(role: str, *cells: str, folder: Path | None = None) -> tuple[Any, dict[str, dict[str, Any]]]:
        monkeypatch.setenv("HIMALIA_API_URL", api.base)
        monkeypatch.setenv("HIMALIA_TOKEN", api.world.tokens[role])
        monkeypatch.setenv("HIMALIA_PROJECT", "ALPHA")
        monkeypatch.delenv("HIMALIA_RUN_ID", raising=False)
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
        resources = {"metadata": {"path": str(folder)}} if folder else {}
        NotebookClient(
            notebook, kernel_name="python3", timeout=120, store_widget_state=True, resources=resources
        ).execute()
        state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        return notebook, {model_id: model["state"] for model_id, model in state.items()}

    yield execute
    kernel_client.client.cache_clear()


def data_of(cell: Any) -> dict[str, Any]:
    """What a cell's value showed (its execute result, else what it displayed)."""
    shown = [output for output in cell.outputs if output["output_type"] in ("execute_result", "display_data")]
    results = [output for output in shown if output["output_type"] == "execute_result"] or shown
    return dict(results[-1]["data"])


def html_values(state: dict[str, dict[str, Any]]) -> list[str]:
    return [model["value"] for model in state.values() if model.get("_model_name") == "HTMLModel"]


def test_a_dataset_shows_its_card_as_a_widget_and_as_html(kernel_of, api: LiveAPI) -> None:  # type: ignore[no-untyped-def]
    add_row_checks(api.plane)
    admin = api.plane.users.caller_for("admin")
    for _ in range(3):
        api.plane.checks.run_checks(admin, "ALPHA", "transactions")
    notebook, state = kernel_of("contributor", "import himalia\nhimalia.dataset('transactions')")
    data = data_of(notebook.cells[0])
    assert data["text/plain"] == "<himalia.Dataset ALPHA/transactions>"
    view = data[WIDGET_VIEW]["model_id"]
    assert state[view]["_model_name"] == "VBoxModel"  # the card and its buttons
    buttons = {model["description"] for model in state.values() if model.get("_model_name") == "ButtonModel"}
    assert buttons == {"Refresh", "Run checks"}
    (card,) = [value for value in html_values(state) if "himalia-dataset" in value]
    assert card == data["text/html"]  # the same content where no widget manager renders it
    assert "13 columns" in card and "purchase_amount" in card
    assert "Enough rows" in card and widgets.COLOURS["ERROR"] in card  # 300 rows, at least 1000 asked
    assert "record_count" in card and '<svg class="himalia-spark"' in card  # three values: a history


def test_checks_and_a_scenario_run_show_their_progress_and_return_the_result(  # type: ignore[no-untyped-def]
    kernel_of, api: LiveAPI, tmp_path: Path
) -> None:
    add_row_checks(api.plane)
    start_engine(api.plane, api, tmp_path, warm=0)
    saved(
        api, {"id": "quick", "name": "Quick", "steps": [{"name": "Set", "type": "set_variables", "values": {"a": 1}}]}
    )
    notebook, state = kernel_of(
        "contributor",
        "import himalia\nran = himalia.checks('transactions').run()\nran['outcome']",
        "run = himalia.scenario('quick').run()\n(run['state'], len(run['steps']))",
        "later = himalia.scenario('quick').run(wait=False)\nlater['state'] in ('queued', 'running')",
    )
    outputs = [data_of(cell)["text/plain"] for cell in notebook.cells]
    assert outputs == ["'ERROR'", "('succeeded', 1)", "True"]
    values = html_values(state)
    (checks,) = [value for value in values if "himalia-checks" in value]
    assert 'data-outcome="ERROR"' in checks.replace("'", '"') and "Enough rows" in checks and "Plenty of rows" in checks
    runs = [value for value in values if "himalia-run" in value]
    assert any("data-state='succeeded'" in value and "1/1 steps" in value for value in runs), runs
    assert all("lab?himalia-run=ALPHA/quick/" in value for value in runs)  # a link to the run's page


def notebook_with(parameters: str, path: Path) -> None:
    """A notebook as JupyterLab saves it, its first cell tagged ``parameters``."""
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_the_parameters_form_types_its_fields_and_sets_the_values_in_the_kernel(kernel_of, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    notebook_with(
        "threshold: float = 0.8\nlimit: int = 100\nregion: str = 'eu'\nverbose = True", tmp_path / "tried.ipynb"
    )
    notebook, state = kernel_of(
        "reader",
        "import himalia\nform = himalia.parameters_form('tried.ipynb')\nform",
        "form.fields['threshold'].value = 0.65\nform.fields['limit'].value = 7\nform.set_values()\n"
        "(threshold, limit, region, verbose)",
        "form.fields['verbose'].value = False\nform.fields['region'].value = 'us'\nform.apply.click()\n"
        "(verbose, region)",
        folder=tmp_path,
    )
    data = data_of(notebook.cells[0])
    assert WIDGET_VIEW in data and "threshold" in data["text/html"] and "float" in data["text/html"]
    models = {model["description"]: model["_model_name"] for model in state.values() if model.get("description")}
    assert models["threshold: float"] == "FloatTextModel" and models["limit: int"] == "IntTextModel"
    assert models["region: str"] == "TextModel" and models["verbose: bool"] == "CheckboxModel"
    assert data_of(notebook.cells[1])["text/plain"] == "(0.65, 7, 'eu', True)"
    assert data_of(notebook.cells[2])["text/plain"] == "(False, 'us')"  # Apply, as a person clicks it


def test_the_form_refuses_a_value_of_another_type_naming_the_parameter(tmp_path: Path) -> None:
    notebook_with("items: list = [1]\nlimit: int = 3", tmp_path / "n.ipynb")
    namespace: dict[str, Any] = {}
    form = kernel_client.parameters_form(str(tmp_path / "n.ipynb"))
    form.namespace = namespace
    form.fields["items"].value = "{'a': 1}"
    assert form.set_values() == {} and "items" in form.status.value and "ERROR" in form.status.value
    form.fields["items"].value = "not python ["
    assert form.set_values() == {} and "not a Python literal" in form.status.value
    form.fields["items"].value = "[1, 2]"
    assert form.set_values() == {"items": [1, 2], "limit": 3} and namespace["items"] == [1, 2]
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    plain.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(plain, tmp_path / "p.ipynb")
    with pytest.raises(kernel_client.HimaliaClientError, match="no parameters cell"):
        kernel_client.parameters_form(str(tmp_path / "p.ipynb"))


def test_without_ipywidgets_the_views_are_html(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(widgets, "widgets_available", lambda: False)
    view = widgets.View(widgets.checks_html("d", {"outcome": "OK", "results": []}))
    assert view.widget is None and set(view._repr_mimebundle_()) == {"text/html"}
    summary = {
        "project": "P",
        "dataset": {"name": "<d>", "connection": "c", "table": "t", "columns": [{"name": "a", "type": "INTEGER"}]},
        "checks": [],
        "history": {"m": [1, 2, float("nan"), 3]},
    }
    card = widgets.dataset_html(summary)
    assert "&lt;d&gt;" in card and "<d>" not in card  # escaped
