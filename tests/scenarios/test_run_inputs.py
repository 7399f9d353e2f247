"""The datasets a run read, kept on the run for its reproducibility: what its steps computed on
and what its kernels opened or read with its token, each with the dataset's schema digest; a
person's own token reading the same dataset adds nothing to any run."""

import sqlite3
from pathlib import Path

from ..conftest import LiveAPI
from .conftest import log_of, notebook, saved, start, wait

READS = notebook(
    "import os, requests, himalia\n"
    "described = himalia.dataset('orders').describe()  # what to_pandas asks first\n"
    "url, auth = os.environ['HIMALIA_API_URL'], {'Authorization': 'token ' + os.environ['HIMALIA_TOKEN']}\n"
    "read = requests.get(url + '/projects/ALPHA/datasets/orders/data?format=csv&limit=5', headers=auth)\n"
    "assert read.status_code == 200, read.text\n"
    "print(len(read.text.splitlines()))",
)
DEFINITION = {
    "id": "inputs",
    "name": "Inputs",
    "steps": [
        {"name": "Read", "type": "notebook", "notebook": "read.ipynb"},
        {"name": "Count", "type": "compute_metrics", "dataset": "orders", "probes": ["record_count"]},
    ],
}


def test_a_run_keeps_the_datasets_its_steps_and_kernels_read(runner: LiveAPI, tmp_path: Path) -> None:
    source = tmp_path / "orders.sqlite"
    with sqlite3.connect(source) as database:
        database.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        database.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i * 1.5) for i in range(40)])
    connection = {"name": "orders_db", "type": "sql", "params": {"url": f"sqlite:///{source}"}}
    assert runner.request("POST", "/connections", json=connection).status_code == 201
    created = runner.request(
        "POST", "/projects/ALPHA/datasets", json={"name": "orders", "connection": "orders_db", "table": "orders"}
    )
    assert created.status_code == 201, created.text
    saved(runner, DEFINITION, {"read.ipynb": READS})

    first = wait(runner, "inputs", start(runner, "inputs"))
    assert first["state"] == "succeeded", log_of(runner, "inputs", first["id"])[-3000:]
    inputs = {(i["dataset"], i["read_by"]): i for i in first["inputs"]}
    assert set(inputs) == {("orders", "kernel"), ("orders", "step")}, first["inputs"]
    assert inputs[("orders", "step")]["rows"] == 40  # the record count computed in the same pass
    assert inputs[("orders", "kernel")]["rows"] == 5  # the rows the platform sent it
    digest = inputs[("orders", "kernel")]["schema_digest"]
    assert len(digest) == 64 and inputs[("orders", "step")]["schema_digest"] == digest

    # A person reading the dataset with a token of their own is no run's input.
    assert runner.request("GET", "/projects/ALPHA/datasets/orders", role="contributor").status_code == 200
    again = runner.request("GET", f"/projects/ALPHA/scenarios/inputs/runs/{first['id']}").json()
    assert again["inputs"] == first["inputs"]

    # The table gains a column: the next run's input says so, and the comparison shows it.
    with sqlite3.connect(source) as database:
        database.execute("ALTER TABLE orders ADD COLUMN note TEXT")
    refreshed = runner.request("POST", "/projects/ALPHA/datasets/orders/schema")
    assert refreshed.status_code == 200 and "note" in str(refreshed.json()["changes"]), refreshed.text
    second = wait(runner, "inputs", start(runner, "inputs"))
    compared = runner.request(
        "GET", f"/projects/ALPHA/scenarios/inputs/runs/{first['id']}/compare/{second['id']}", role="reader"
    ).json()
    (orders,) = compared["inputs"]
    assert orders["name"] == "orders" and orders["same"] is False
    assert orders["a"]["schema_digest"] == digest != orders["b"]["schema_digest"]
