"""Fixtures of the data tests: ``warehouse``, two PostgreSQL databases whose statements are counted.

``warehouse``  databases ``kept_wh`` (an ``events`` table of 100 rows) and ``kept_wh_other`` (50
               rows) readable by the roles ``kept_alice`` and ``kept_bob``; they log every statement
               (``log_statement = all``), and ``statements()`` reads what they were asked from the
               server's own log, so a new engine's first-connect queries count too.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from himalia.controlplane import ControlPlane
from himalia.wire.data import AccessSpec, CheckSpec, CreateConnection, CreateDataset

from ..postgres import TemporaryPostgres

WAREHOUSES = ("kept_wh", "kept_wh_other")
ROLES = {"kept_alice": "alice-Pw1", "kept_bob": "bob-Pw1"}
#: A statement in the server's log: its entry, up to the next entry's time stamp.
LOGGED = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*?)(?=^\d{4}-\d\d-\d\d |\Z)", re.DOTALL | re.MULTILINE)
TRANSACTION_CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b")
CHECKS = [
    CheckSpec(name="Enough rows", type="range", metric="record_count", min=50),
    CheckSpec(name="Few missing amounts", type="range", metric="null_count:amount", max=10),
    CheckSpec(name="Amounts positive", type="range", metric="min:amount", min=0),
    CheckSpec(name="Average amount", type="range", metric="avg:amount", min=1, max=1000),
    CheckSpec(name="Fresh", type="freshness"),
]


@dataclass
class Warehouse:
    server: TemporaryPostgres
    offset: int = 0

    def url(self, database: str = WAREHOUSES[0], user: str | None = "kept_alice") -> str:
        if user is None:
            return f"postgresql+psycopg://127.0.0.1:{self.server.port}/{database}"
        return self.server.url(database, user=user)

    def execute(self, statement: str, database: str = WAREHOUSES[0]) -> None:
        engine = sa.create_engine(self.server.url(database), isolation_level="AUTOCOMMIT")
        with engine.connect() as sql:
            sql.execute(sa.text(statement))
        engine.dispose()

    def statements(self) -> list[str]:
        """What the warehouse's databases were asked since the last call, transaction control apart."""
        with (self.server.root / "log").open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
            self.offset = log.tell()
        found = [" ".join(match.group(1).split()) for match in LOGGED.finditer(text)]
        return [statement for statement in found if not TRANSACTION_CONTROL.match(statement)]


@pytest.fixture
def warehouse(postgres: TemporaryPostgres, postgres_admin: sa.Engine) -> Iterator[Warehouse]:
    """Two databases with an ``events`` table (100 rows and 50), readable by two roles, logging every statement."""
    with postgres_admin.connect() as sql:
        for role, password in ROLES.items():
            sql.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
            sql.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    found = Warehouse(postgres)
    for database, rows in zip(WAREHOUSES, (100, 50), strict=True):
        with postgres_admin.connect() as sql:
            sql.execute(sa.text(f"CREATE DATABASE {database}"))
            sql.execute(sa.text(f"ALTER DATABASE {database} SET log_statement = 'all'"))
        found.execute(
            "CREATE TABLE events AS SELECT g AS id, CASE WHEN g % 20 = 0 THEN NULL ELSE g * 1.5 END::float8 AS amount, "
            f"now()::timestamp AS updated_at FROM generate_series(1, {rows}) g",
            database,
        )
        found.execute("GRANT SELECT ON events TO kept_alice, kept_bob", database)
    found.statements()
    yield found
    with postgres_admin.connect() as sql:
        for database in WAREHOUSES:
            sql.execute(sa.text(f"DROP DATABASE {database} WITH (FORCE)"))
        for role in ROLES:
            sql.execute(sa.text(f"DROP ROLE {role}"))


def the_dataset(plane: ControlPlane, connection: str, *, checks: bool = True) -> None:
    """``events`` of ``connection`` in ALPHA, declaring its freshness, with five checks (as its owner)."""
    owner = plane.users.caller_for("projadmin")
    spec = CreateDataset(
        name="events",
        connection=connection,
        table="events",
        freshness={"column": "updated_at", "max_age": "1d"},
        custom_metrics=[{"name": "who", "sql": "SELECT current_user"}],
    )
    plane.datasets.create_dataset(owner, "ALPHA", spec)
    for check in CHECKS if checks else []:
        plane.checks.save_check(owner, "ALPHA", "events", check)


def shared_connection(plane: ControlPlane, warehouse: Warehouse) -> None:
    plane.connections.create_connection(
        plane.users.caller_for("projadmin"),
        CreateConnection(
            name="kept",
            type="sql",
            params={"url": warehouse.url()},
            secrets={"password": ROLES["kept_alice"]},
            usable_by=AccessSpec(mode="groups", groups=["contributors"]),
        ),
    )
