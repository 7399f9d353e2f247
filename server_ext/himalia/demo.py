"""The demo: Dataiku's credit-card fraud exercise as a Himalia project.

Seeds people in three groups, a SQLite warehouse of synthetic transactions and merchants, the
FRAUD project with grants by preset, a connection to the warehouse and variables. Running it
again keeps what exists.
"""

import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

from .caller import Caller
from .controlplane import ControlPlane
from .errors import Conflict
from .models import AccessSpec, CreateConnection, CreateGroup, CreateProject, CreateUser, SetGrant, Variables
from .permissions import GlobalPermission as G
from .permissions import Profile

GROUPS = [
    (
        "data_team",
        "Data scientists who build the pipelines.",
        [G.CREATE_PROJECTS, G.CREATE_CONNECTIONS, G.WRITE_UNSAFE_CODE],
    ),
    ("analysts", "Analysts who explore and report.", [G.CREATE_PROJECTS]),
    ("readers", "Business readers of results.", []),
]
USERS = [
    ("alice", "Alice Martin", "designer", "data_team"),
    ("bob", "Bob Chen", "analyst", "analysts"),
    ("carol", "Carol Diaz", "reader", "readers"),
]
CATEGORIES = ["grocery", "travel", "electronics", "restaurants", "fuel", "fashion"]
STATES = ["CA", "NY", "TX", "WA", "IL", "FL"]


def build_warehouse(path: Path, transactions: int = 5000, merchants: int = 120) -> None:
    """A deterministic SQLite warehouse of merchants and card transactions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2018)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            DROP TABLE IF EXISTS transactions;
            DROP TABLE IF EXISTS merchants;
            CREATE TABLE merchants (merchant_id TEXT PRIMARY KEY, category TEXT, state TEXT);
            CREATE TABLE transactions (
                transaction_id INTEGER PRIMARY KEY, card_id TEXT, merchant_id TEXT,
                purchase_date TEXT, amount REAL, authorized_flag INTEGER
            );
            """
        )
        db.executemany(
            "INSERT INTO merchants VALUES (?, ?, ?)",
            [(f"M{i:04d}", rng.choice(CATEGORIES), rng.choice(STATES)) for i in range(merchants)],
        )
        start = date(2018, 1, 1)
        db.executemany(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    f"C{rng.randrange(800):04d}",
                    f"M{rng.randrange(merchants):04d}",
                    (start + timedelta(days=rng.randrange(365))).isoformat(),
                    round(rng.lognormvariate(3.5, 1.0), 2),
                    int(rng.random() > 0.08),
                )
                for i in range(transactions)
            ],
        )


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

    warehouse = Path(plane.home) / "demo" / "warehouse.sqlite"
    if not warehouse.exists():
        build_warehouse(warehouse)
        yield f"built the warehouse at {warehouse}"
    warehouse_connection = CreateConnection(
        name="warehouse",
        type="sql",
        description="The demo warehouse: transactions and merchants.",
        params={"url": f"sqlite:///{warehouse}"},
        usable_by=AccessSpec(mode="groups", groups=["data_team", "analysts"]),
        details_readable_by=AccessSpec(mode="groups", groups=["data_team"]),
    )
    yield from created("connection warehouse", connections.create_connection, alice, warehouse_connection)
    plane.variables.set_instance(operator, Variables(variables={"company": "Himalia Demo"}))
    plane.variables.set_project(
        alice,
        "FRAUD",
        Variables(variables={"min_transactions": 1000, "report_title": "Fraud report for ${company}"}),
    )
    yield "set instance and FRAUD variables"
