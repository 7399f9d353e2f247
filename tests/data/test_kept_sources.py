"""What a check run asks of its source once the engine and the table's columns are kept: one
statement; and that nothing kept outlives what it was made of: another person's credentials, an
edited connection, a changed secret, a refreshed schema or a changed table each make it anew.

The statements are counted by the PostgreSQL server itself (the ``warehouse`` fixture).
"""

from pathlib import Path

import pytest

from himalia.controlplane import ControlPlane
from himalia.core.errors import InvalidInput
from himalia.data.drivers import SqlSources, UsableConnection
from himalia.wire.data import AccessSpec, CreateConnection, CreateDataset, SetCredentials, UpdateConnection

from .conftest import ROLES, WAREHOUSES, Warehouse, shared_connection, the_dataset


def test_a_check_run_issues_one_statement_once_its_engine_and_columns_are_kept(
    plane: ControlPlane, warehouse: Warehouse
) -> None:
    shared_connection(plane, warehouse)
    the_dataset(plane, "kept")
    owner = plane.users.caller_for("projadmin")
    warehouse.statements()  # creating the dataset read its columns with an engine of its own
    first = plane.checks.run_checks(owner, "ALPHA", "events")
    assert first.outcome == "OK", first
    assert len(warehouse.statements()) > 2  # a new engine's first-connect queries, the columns, the aggregate
    for _ in range(2):
        assert plane.checks.run_checks(owner, "ALPHA", "events").outcome == "OK"
        (statement,) = warehouse.statements()
        assert statement.startswith("SELECT sum(events.amount) AS p0,") and statement.endswith("FROM events")
    # Refreshing the schema reads the columns again (and the check run after it, once).
    plane.datasets.refresh_schema(owner, "ALPHA", "events")
    warehouse.statements()
    plane.checks.run_checks(owner, "ALPHA", "events")
    reflected, aggregate = warehouse.statements()
    assert "pg_catalog.pg_attribute" in reflected and aggregate.startswith("SELECT sum(events.amount) AS p0,")
    plane.checks.run_checks(owner, "ALPHA", "events")
    assert len(warehouse.statements()) == 1


def test_a_changed_table_is_read_again_when_its_kept_columns_fail(plane: ControlPlane, warehouse: Warehouse) -> None:
    shared_connection(plane, warehouse)
    the_dataset(plane, "kept")
    owner = plane.users.caller_for("projadmin")
    plane.checks.run_checks(owner, "ALPHA", "events")
    warehouse.execute("ALTER TABLE events ALTER COLUMN amount TYPE text USING amount::text")
    # The kept columns say amount is a number, which the database now refuses to sum: read again,
    # they say text, and the probe is refused by name rather than with the driver's error.
    with pytest.raises(InvalidInput, match="'avg:amount': column 'amount' is text, not numeric"):
        plane.checks.run_checks(owner, "ALPHA", "events")
    warehouse.execute("ALTER TABLE events DROP COLUMN amount")
    with pytest.raises(InvalidInput, match="the dataset has no column 'amount'"):
        plane.checks.run_checks(owner, "ALPHA", "events")


def test_a_statement_timing_out_on_kept_columns_is_not_run_again(plane: ControlPlane, warehouse: Warehouse) -> None:
    warehouse.execute("CREATE TABLE slow AS SELECT 1 AS id")
    warehouse.execute("GRANT SELECT ON slow TO kept_alice")
    owner = plane.users.caller_for("projadmin")
    plane.connections.create_connection(
        owner,
        CreateConnection(
            name="timed",
            type="sql",
            params={"url": warehouse.url(), "connect_args": {"options": "-c statement_timeout=300"}},
            secrets={"password": ROLES["kept_alice"]},
        ),
    )
    query = "SELECT id, pg_sleep(0.05) IS NULL AS slept FROM slow"  # 50 ms a row
    plane.datasets.create_dataset(owner, "ALPHA", CreateDataset(name="slow", connection="timed", query=query))
    assert plane.metrics.compute(owner, "ALPHA", "slow", ["record_count"]).values == {"record_count": 1}
    warehouse.execute("INSERT INTO slow SELECT g FROM generate_series(2, 40) g")
    warehouse.statements()
    with pytest.raises(InvalidInput, match="canceling statement due to statement timeout"):
        plane.metrics.compute(owner, "ALPHA", "slow", ["record_count"])
    assert len(warehouse.statements()) == 1  # neither the columns read again nor the scan repeated


def test_each_person_computes_with_an_engine_of_their_own_credentials(
    plane: ControlPlane, warehouse: Warehouse
) -> None:
    plane.connections.create_connection(
        plane.users.caller_for("admin"),
        CreateConnection(
            name="personal_pg",
            type="sql",
            params={"url": warehouse.url(user=None)},
            credentials_mode="per_user",
            usable_by=AccessSpec(mode="groups", groups=["contributors", "creators"]),
        ),
    )
    alice, bob = plane.users.caller_for("contributor"), plane.users.caller_for("projadmin")
    plane.connections.set_my_credentials(
        bob, "personal_pg", SetCredentials(secrets={"user": "kept_bob", "password": ROLES["kept_bob"]})
    )
    the_dataset(plane, "personal_pg", checks=False)
    plane.connections.set_my_credentials(
        alice, "personal_pg", SetCredentials(secrets={"user": "kept_alice", "password": ROLES["kept_alice"]})
    )
    for _ in range(2):
        assert plane.metrics.compute(alice, "ALPHA", "events", ["who"]).values == {"who": "kept_alice"}
        assert plane.metrics.compute(bob, "ALPHA", "events", ["who", "record_count"]).values == {
            "who": "kept_bob",
            "record_count": 100,
        }
    plane.connections.set_my_credentials(
        bob, "personal_pg", SetCredentials(secrets={"user": "kept_bob", "password": "x"})
    )
    with pytest.raises(InvalidInput, match="password authentication failed"):
        plane.metrics.compute(bob, "ALPHA", "events", ["record_count"])
    assert plane.metrics.compute(alice, "ALPHA", "events", ["who"]).values == {"who": "kept_alice"}


def test_an_edited_connection_or_a_changed_secret_is_used_at_once(plane: ControlPlane, warehouse: Warehouse) -> None:
    shared_connection(plane, warehouse)
    the_dataset(plane, "kept", checks=False)
    owner = plane.users.caller_for("projadmin")
    assert plane.metrics.compute(owner, "ALPHA", "events", ["record_count"]).values == {"record_count": 100}
    # The connection now names another database: its table is read there.
    plane.connections.update_connection(owner, "kept", UpdateConnection(params={"url": warehouse.url(WAREHOUSES[1])}))
    assert plane.metrics.compute(owner, "ALPHA", "events", ["record_count"]).values == {"record_count": 50}
    # The role's password changes, and so does the connection's secret: the new one is used.
    warehouse.execute("ALTER ROLE kept_alice PASSWORD 'alice-Pw2'")
    plane.connections.update_connection(owner, "kept", UpdateConnection(secrets={"password": "alice-Pw2"}))
    assert plane.metrics.compute(owner, "ALPHA", "events", ["record_count"]).values == {"record_count": 50}
    # A wrong secret is refused at once, though an engine with the right one is kept.
    plane.connections.update_connection(owner, "kept", UpdateConnection(secrets={"password": "wrong"}))
    with pytest.raises(InvalidInput, match="password authentication failed"):
        plane.metrics.compute(owner, "ALPHA", "events", ["record_count"])
    plane.connections.update_connection(owner, "kept", UpdateConnection(secrets={"password": "alice-Pw2"}))
    plane.metrics.compute(owner, "ALPHA", "events", ["record_count"])
    # Re-encrypting the stored secrets with a new instance key changes no secret: the engine stays.
    warehouse.statements()
    plane.connections.rotate_keys(plane.users.caller_for("admin"))
    plane.metrics.compute(owner, "ALPHA", "events", ["record_count"])
    assert len(warehouse.statements()) == 1


def test_the_least_recently_used_engine_goes_first(tmp_path: Path) -> None:
    def usable(name: str) -> UsableConnection:
        return UsableConnection(
            name=name, type="sql", params={"url": f"sqlite:///{tmp_path / name}.sqlite"}, secrets={}, allow_write=False
        )

    sources = SqlSources(max_engines=2)
    first = sources.engine(usable("a"))
    assert sources.engine(usable("a")) is first
    second = sources.engine(usable("b"))
    assert second is not first
    assert sources.engine(usable("a")) is first  # now the most recently used
    sources.engine(usable("c"))
    assert sources.engine(usable("a")) is first
    assert sources.engine(usable("b")) is not second  # b went first, and was made anew
