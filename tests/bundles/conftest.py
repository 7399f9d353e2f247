"""Two instances for promotion tests: ``design`` on SQLite and ``production`` on PostgreSQL.

Both start from the seeded template of their backend (the same people and groups, the connection
``wh`` on a warehouse of their own). On design, the project FRAUD holds a dataset on a connection
with a secret, a check, variables and a scenario that runs checks and a notebook; production has
its own warehouse connection ``prod_wh`` to map ``wh_secret`` to.
"""

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from himalia.controlplane import ControlPlane
from himalia.demo.seed import build_warehouse
from himalia.wire.bundles import TrustKey
from himalia.wire.common import Variables
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection, CreateDataset
from himalia.wire.identity import CreateProject
from himalia.wire.scenarios import SaveScenario

from ..conftest import World, _template, make_plane
from ..scenarios.conftest import notebook

DESIGN_SECRET = "design-warehouse-password-Zq81"
PROJECT = "FRAUD"


def scenario_definition() -> dict[str, Any]:
    return {
        "id": "score",
        "name": "Daily scoring",
        "steps": [
            {"name": "Check inputs", "type": "run_checks", "dataset": "tx"},
            {"name": "Score", "type": "notebook", "notebook": "score.ipynb", "parameters": {"x": 3}},
        ],
        "triggers": [{"type": "time", "schedule": "daily at 02:00"}],
    }


#: The notebook needs the files beside it: a module it imports and a CSV it reads.
SCORE_NOTEBOOK = notebook(
    "from helpers import double\nimport csv\nrates = list(csv.reader(open('rates.csv')))",
    "print('scored', double(x), 'with', len(rates), 'rates')",
)
PROJECT_FILES = {"helpers.py": "def double(value):\n    return value * 2\n", "rates.csv": "region,rate\neu,0.7\n"}


@pytest.fixture
def design(
    tmp_path: Path, request: pytest.FixtureRequest, templates: dict[str, tuple[str, World]]
) -> Iterator[ControlPlane]:
    location, _ = _template("sqlite", request, templates)
    copy = tmp_path / "design.sqlite"
    shutil.copyfile(location, copy)
    plane = make_plane(tmp_path / "design-home", f"sqlite:///{copy}")
    seed_fraud(plane, tmp_path / "design-warehouse.sqlite", tmp_path / "design-notebooks")
    yield plane
    plane.stop()


@pytest.fixture
def production(
    tmp_path: Path, request: pytest.FixtureRequest, templates: dict[str, tuple[str, World]]
) -> Iterator[ControlPlane]:
    location, _ = _template("postgresql", request, templates)
    admin = request.getfixturevalue("postgres_admin")
    postgres = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {location}"))
    plane = make_plane(tmp_path / "production-home", postgres.url(name))
    warehouse = tmp_path / "production-warehouse.sqlite"
    build_warehouse(warehouse, transactions=120, merchants=10)
    plane.connections.create_connection(
        plane.users.caller_for("admin"),
        CreateConnection(
            name="prod_wh",
            type="sql",
            params={"url": f"sqlite:///{warehouse}"},
            usable_by=AccessSpec(mode="groups", groups=["contributors"]),
        ),
    )
    yield plane
    plane.stop()
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def seed_fraud(plane: ControlPlane, warehouse: Path, notebooks: Path) -> None:
    """FRAUD on ``plane``; its scenario is saved from the notebook folder ``notebooks``, so that its
    project files (a module, a CSV) are snapshotted with it."""
    admin = plane.users.caller_for("admin")
    notebooks.mkdir()
    (notebooks / "score.ipynb").write_text(json.dumps(SCORE_NOTEBOOK))
    for name, content in PROJECT_FILES.items():
        (notebooks / name).write_text(content)
    plane.notebook_root = str(notebooks)
    build_warehouse(warehouse, transactions=200, merchants=20)
    plane.connections.create_connection(
        admin,
        CreateConnection(
            name="wh_secret",
            type="sql",
            params={"url": f"sqlite:///{warehouse}"},
            secrets={"password": DESIGN_SECRET},
        ),
    )
    plane.projects.create_project(admin, CreateProject(key=PROJECT, name="Fraud scoring"))
    plane.datasets.create_dataset(
        admin,
        PROJECT,
        CreateDataset(name="tx", connection="wh_secret", table="transactions_2018", probes=["record_count"]),
    )
    plane.checks.save_check(
        admin, PROJECT, "tx", CheckSpec(name="Some rows", type="range", metric="record_count", min=10)
    )
    plane.variables.set_project(admin, PROJECT, Variables(variables={"threshold": 0.7}))
    plane.scenarios.save_scenario(admin, PROJECT, SaveScenario(definition=scenario_definition()))


def trust(importer: ControlPlane, exporter: ControlPlane, name: str = "design") -> None:
    importer.bundles.trust_key(
        importer.users.caller_for("admin"), TrustKey(name=name, public_key=exporter.bundles.public_key().public_key)
    )
