"""Metrics a notebook step lists are those its own kernel recorded, whatever the run did before."""

from himalia.controlplane import ControlPlane
from himalia.wire.data import CreateDataset

from ..conftest import LiveAPI
from ..execution.test_report import outside_references
from .conftest import BASE, log_of, notebook, saved, start, wait


def test_each_notebook_step_lists_only_the_metrics_its_kernel_recorded(runner: LiveAPI, plane: ControlPlane) -> None:
    """Two notebook steps recording for two datasets, after a compute_metrics step: before, the
    second step listed the first step's metric and every computed one as its own."""
    admin = plane.users.caller_for("admin")
    plane.datasets.create_dataset(admin, "ALPHA", CreateDataset(name="merchants", connection="wh", table="merchants"))
    recorder = notebook(
        "import himalia\nhimalia.record_metric('rows', rows, dataset=dataset)\nhimalia.record_metric('ran', True)",
        parameters='rows: int = 0\ndataset: str = ""',
    )
    definition = {
        "id": "two-datasets",
        "name": "Two datasets",
        "steps": [
            {"name": "Count", "type": "compute_metrics", "dataset": "transactions", "probes": ["record_count"]},
            {
                "name": "Transactions",
                "type": "notebook",
                "notebook": "recorder.ipynb",
                "parameters": {"rows": 300, "dataset": "transactions"},
            },
            {
                "name": "Merchants",
                "type": "notebook",
                "notebook": "recorder.ipynb",
                "parameters": {"rows": 40, "dataset": "merchants"},
            },
        ],
    }
    saved(runner, definition, {"recorder.ipynb": recorder})
    run = wait(runner, "two-datasets", start(runner, "two-datasets"), timeout=120)
    assert run["state"] == "succeeded", (run, log_of(runner, "two-datasets", run["id"]))
    count, transactions, merchants = run["steps"]
    assert count["outputs"]["values"] == {"record_count": 300}
    assert transactions["outputs"]["metrics"] == {"transactions/rows": 300, "ran": True}
    assert merchants["outputs"]["metrics"] == {"merchants/rows": 40, "ran": True}
    # Each notebook step keeps its own report, which references nothing outside itself.
    assert [step["artifacts"] for step in run["steps"]] == [[], ["html", "ipynb"], ["html", "ipynb"]]
    for step, rows, other in (("Transactions", 300, 40), ("Merchants", 40, 300)):
        report = runner.request("GET", f"{BASE}/two-datasets/runs/{run['id']}/report", params={"step": step})
        assert report.status_code == 200, report.text
        assert outside_references(report.text) == []
        injected = '<span class="n">rows</span> <span class="o">=</span> <span class="mi">{}</span>'
        assert injected.format(rows) in report.text and injected.format(other) not in report.text
