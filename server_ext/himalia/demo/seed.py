"""The demo: Dataiku's credit-card fraud exercise as a Himalia project.

Seeds people in three groups, a SQLite warehouse of synthetic transactions and merchants, the
FRAUD project with grants by preset, a connection to the warehouse and variables. Running it
again keeps what exists.
"""

import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict
from himalia.core.permissions import GlobalPermission as G
from himalia.core.permissions import Profile
from himalia.identity.caller import Caller
from himalia.wire.common import Variables
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection, CreateDataset
from himalia.wire.identity import CreateGroup, CreateProject, CreateUser, SetGrant

GROUPS = [
    (
        "data_team",
        "Data scientists who build the pipelines.",
        [G.CREATE_PROJECTS, G.CREATE_CONNECTIONS, G.WRITE_UNSAFE_CODE, G.WRITE_ISOLATED_CODE],
    ),
    ("analysts", "Analysts who explore and report.", [G.CREATE_PROJECTS, G.WRITE_ISOLATED_CODE]),
    ("readers", "Business readers of results.", []),
]
USERS = [
    ("alice", "Alice Martin", "designer", "data_team"),
    ("bob", "Bob Chen", "analyst", "analysts"),
    ("carol", "Carol Diaz", "reader", "readers"),
]
ITEM_CATEGORIES = ["A", "B", "C", "D", "E"]
SUBSECTORS = ["grocery", "travel", "electronics", "restaurants", "fuel", "fashion", "pharmacy"]
STATES = ["CA", "NY", "TX", "WA", "IL", "FL", "MA", "CO"]


def build_warehouse(path: Path, transactions: int = 12_000, merchants: int = 10_500) -> None:
    """A deterministic SQLite warehouse shaped like the Dataiku fraud exercise.

    ``transactions_2018`` (13 columns), ``merchants`` (7 columns) and the prepared join
    ``transactions_joined_prepared`` with the card holders' FICO scores.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2018)
    start = date(2018, 1, 1)
    merchant_rows = [
        (
            f"M{i:05d}",
            rng.randrange(1, 400),
            rng.choice(SUBSECTORS),
            round(rng.uniform(25, 48), 4),
            round(rng.uniform(-122, -71), 4),
            rng.choice(STATES),
            rng.randrange(1, 6),
        )
        for i in range(merchants)
    ]
    fico = {f"C{card:05d}": max(300, min(850, int(rng.gauss(590, 45)))) for card in range(4000)}
    transaction_rows = []
    for i in range(transactions):
        merchant = merchant_rows[rng.randrange(merchants)]
        transaction_rows.append(
            (
                i,
                f"C{rng.randrange(4000):05d}",
                merchant[0],
                merchant[1],
                rng.choice(ITEM_CATEGORIES),
                (start + timedelta(days=rng.randrange(365), seconds=rng.randrange(86400))).isoformat(),
                round(rng.lognormvariate(3.5, 1.0), 2),
                int(rng.random() > 0.08),
                int(rng.random() > 0.3),
                rng.choice([0, 1, 1, 1, 3, 6, 12]),
                int(rng.random() > 0.5),
                "USD",
                rng.choice(["US", "US", "US", "CA", "MX", "FR"]),
            )
        )
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            DROP TABLE IF EXISTS transactions_2018;
            DROP TABLE IF EXISTS merchants;
            DROP TABLE IF EXISTS transactions_joined_prepared;
            CREATE TABLE merchants (
                merchant_id TEXT PRIMARY KEY, merchant_category_id INTEGER, subsector_description TEXT,
                latitude REAL, longitude REAL, state TEXT, merchant_group_id INTEGER
            );
            CREATE TABLE transactions_2018 (
                transaction_id INTEGER PRIMARY KEY, card_id TEXT, merchant_id TEXT, merchant_category_id INTEGER,
                item_category TEXT, purchase_date TEXT, purchase_amount REAL, authorized_flag INTEGER,
                signature_provided INTEGER, installments INTEGER, card_present INTEGER, currency TEXT,
                ip_country TEXT
            );
            CREATE TABLE transactions_joined_prepared (
                transaction_id INTEGER PRIMARY KEY, card_id TEXT, purchase_date TEXT, purchase_amount REAL,
                authorized_flag INTEGER, item_category TEXT, merchant_state TEXT, card_fico_score INTEGER
            );
            """
        )
        db.executemany("INSERT INTO merchants VALUES (?, ?, ?, ?, ?, ?, ?)", merchant_rows)
        db.executemany("INSERT INTO transactions_2018 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", transaction_rows)
        states = {m[0]: m[5] for m in merchant_rows}
        db.executemany(
            "INSERT INTO transactions_joined_prepared VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(t[0], t[1], t[5], t[6], t[7], t[4], states[t[2]], fico[t[1]]) for t in transaction_rows],
        )


#: The training's data-quality rules, as Himalia datasets and checks.
DEMO_DATASETS: list[tuple[str, list[str], list[dict[str, Any]]]] = [
    (
        "transactions_2018",
        ["record_count", "column_count"],
        [
            {"name": "Columns 13", "type": "in_set", "metric": "column_count", "values": [13]},
            {"name": "Over 10k records", "type": "range", "metric": "record_count", "min": 10_000},
        ],
    ),
    (
        "merchants",
        ["record_count", "column_count"],
        [
            {"name": "Columns 7", "type": "in_set", "metric": "column_count", "values": [7]},
            {"name": "Over 10k records", "type": "range", "metric": "record_count", "min": 10_000},
        ],
    ),
    (
        "transactions_joined_prepared",
        ["record_count", "min:purchase_amount", "avg:card_fico_score"],
        [
            {"name": "Positive purchases", "type": "range", "metric": "min:purchase_amount", "min": 0.01},
            {"name": "Avg FICO Score Range", "type": "range", "metric": "avg:card_fico_score", "min": 525, "max": 650},
        ],
    ),
]


def data_folder(home: str) -> Path:
    """Where the demo's data lives: beside the home, since no connection may read inside it."""
    folder = Path(os.path.abspath(home))  # the connection's URL is opened from the kernels' folders too
    return folder.with_name(f"{folder.name}-data")


def share_with_every_account(folder: Path) -> None:
    """Let the notebooks of every demo user write the warehouse: they run as their own OS accounts
    (``UserIsolation``) and open the SQLite file themselves. A real warehouse is a database server
    with credentials of its own; this one is a file any local account may change."""
    os.chmod(folder, 0o1777)  # sticky: a journal SQLite leaves is removable by its writer only
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666)


def seed(plane: ControlPlane) -> Iterator[str]:
    operator = Caller.operator("demo", client_address="demo")
    users, projects, connections = plane.users, plane.projects, plane.connections

    def created(what: str, make: Callable[..., object], *args: object) -> Iterator[str]:
        try:
            make(*args)
            yield f"created {what}"
        except Conflict:
            yield f"kept {what}"

    for name, description, permissions in GROUPS:
        spec = CreateGroup(name=name, description=description, permissions=permissions)
        yield from created(f"group {name}", users.create_group, operator, spec)
    for login, display_name, profile, group in USERS:
        user = CreateUser(
            login=login,
            display_name=display_name,
            email=f"{login}@example.org",
            profile=Profile(profile),
            groups=[group],
        )
        yield from created(f"user {login}", users.create_user, operator, user)
    alice = users.caller_for("alice", client_address="demo")
    try:
        projects.create_project(
            alice,
            CreateProject(
                key="FRAUD",
                name="Credit card fraud",
                description="Detect fraudulent card transactions; metrics and checks keep the nightly data honest.",
                tags=["demo", "fraud"],
            ),
        )
    except Conflict:
        yield "kept project FRAUD"
        return
    yield "created project FRAUD"
    for group, preset in [("data_team", "contributor"), ("analysts", "contributor"), ("readers", "reader")]:
        projects.set_grant(alice, "FRAUD", SetGrant(group=group, preset=preset))
    yield "granted FRAUD: data_team and analysts contributor, readers reader"

    warehouse = data_folder(plane.home) / "warehouse.sqlite"
    if not warehouse.exists():
        build_warehouse(warehouse)
        yield f"built the warehouse at {warehouse}"
    share_with_every_account(warehouse.parent)
    warehouse_connection = CreateConnection(
        name="warehouse",
        type="sql",
        description="The demo warehouse: transactions and merchants.",
        params={"url": f"sqlite:///{warehouse}"},
        allow_write=True,
        usable_by=AccessSpec(mode="groups", groups=["data_team", "analysts"]),
        details_readable_by=AccessSpec(mode="groups", groups=["data_team"]),
    )
    yield from created("connection warehouse", connections.create_connection, alice, warehouse_connection)
    for table, probes, checks in DEMO_DATASETS:
        plane.datasets.create_dataset(
            alice, "FRAUD", CreateDataset(name=table, connection="warehouse", table=table, probes=probes)
        )
        for check in checks:
            plane.checks.save_check(alice, "FRAUD", table, CheckSpec.model_validate(check))
    yield "defined the FRAUD datasets and their checks"
    plane.variables.set_instance(operator, Variables(variables={"company": "Himalia Demo"}))
    plane.variables.set_project(
        alice,
        "FRAUD",
        Variables(variables={"min_transactions": 1000, "report_title": "Fraud report for ${company}"}),
    )
    yield "set instance and FRAUD variables"
