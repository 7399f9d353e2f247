"""``RunService.fire``: a batch of fires in a bounded number of statements, with the policies ``enqueue``
applies run by run (a run queued earlier in the batch counts as in progress, the queue's length is
counted on), the fallback to one run at a time when another process fired a key meanwhile, and the
audit chain its entries extend.

No run engine runs: fired runs stay queued (or skipped) in the store. Every test runs on both backends.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import selectinload

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.scenarios.records import ChildRun, Fire
from himalia.store.orm import AuditEntry, Scenario, ScenarioRun, User
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import RunState, SaveScenario

from ..conftest import make_plane

pytestmark = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])


@pytest.fixture
def plane(plane: ControlPlane) -> ControlPlane:
    """The seeded plane without its seeded scenario, so that every run these tests see is their own."""
    plane.scenarios.delete_scenario(admin(plane), "ALPHA", "nightly")
    return plane


def admin(plane: ControlPlane) -> Caller:
    return plane.users.caller_for("admin")


def save(plane: ControlPlane, slug: str, **fields: Any) -> int:
    """Save a scenario of one ``run_checks`` step with a time trigger; return its row id."""
    definition = ScenarioDefinition.model_validate(
        {
            "id": slug,
            "name": slug,
            "steps": [{"name": "checks", "type": "run_checks", "dataset": "transactions"}],
            "triggers": [{"type": "time", "schedule": "every 15 minutes"}],
            **fields,
        }
    )
    plane.scenarios.save_scenario(admin(plane), "ALPHA", SaveScenario(definition=definition))
    with plane.db.read() as session:
        row_id = session.scalar(select(Scenario.id).where(Scenario.slug == slug))
    assert row_id is not None
    return row_id


def fire(row_id: int, minute: int) -> Fire:
    fire_time = f"2024-01-15T10:{minute:02d}:00+00:00"
    return Fire(row_id, "cron", {"fire_time": fire_time, "trigger": 0}, f"time:{row_id}:{fire_time}")


def run_of(plane: ControlPlane, child: ChildRun | None) -> ScenarioRun:
    assert child is not None
    with plane.db.read() as session:
        return session.get_one(ScenarioRun, child.run_id, options=[selectinload(ScenarioRun.steps)])


def run_count(plane: ControlPlane) -> int:
    with plane.db.read() as session:
        return len(session.scalars(select(ScenarioRun.id)).all())


def verified(plane: ControlPlane) -> int:
    """The audit chain's length, after checking that it verifies."""
    verification = plane.audit.verify(admin(plane))
    assert verification.ok, verification.problems
    return verification.entries


@contextmanager
def statements(plane: ControlPlane) -> Iterator[list[str]]:
    """The SQL statements sent meanwhile, transaction control apart."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(statement)

    event.listen(plane.db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(plane.db.engine, "before_cursor_execute", record)


def test_a_batch_applies_each_policy(plane: ControlPlane) -> None:
    queued = save(plane, "queued")
    gone = save(plane, "gone")
    inactive = save(plane, "inactive", active=False)
    deactivated = save(plane, "deactivated")
    with plane.db.write() as session:
        other = session.get_one(User, session.scalar(select(User.id).where(User.login != "admin")))
        session.execute(update(Scenario).where(Scenario.id == deactivated).values(run_as_id=other.id))
        session.execute(update(User).where(User.id == other.id).values(active=False))
    plane.scenarios.delete_scenario(admin(plane), "ALPHA", "gone")
    fired = plane.runs.fire([fire(queued, 0), fire(gone, 0), fire(inactive, 0), fire(deactivated, 0)])
    assert fired[1] is None and fired[2] is None
    assert fired[0] is not None and fired[0].state == RunState.QUEUED
    assert run_of(plane, fired[0]).steps[0].state == "pending"
    skipped = run_of(plane, fired[3])
    assert skipped.state == RunState.SKIPPED
    assert skipped.trigger_detail["skipped"] == "run_as_deactivated"
    assert f"its run-as user '{other.login}' is deactivated" in skipped.message
    assert skipped.steps[0].state == "skipped" and skipped.ended_at is not None


def test_a_run_queued_earlier_in_the_batch_is_in_progress_for_concurrency_skip(plane: ControlPlane) -> None:
    skip = save(plane, "skip", concurrency="skip")
    queue = save(plane, "queue", concurrency="queue")
    fired = plane.runs.fire([fire(skip, 0), fire(queue, 0), fire(skip, 15), fire(queue, 15), fire(skip, 30)])
    first, *later = (run_of(plane, child) for child in fired[0::2])
    assert first.state == RunState.QUEUED
    for run in later:
        assert run.state == RunState.SKIPPED
        assert run.trigger_detail["skipped"] == "policy"
        assert f"run #{first.id} was still in progress (concurrency policy 'skip')" in run.message
    assert [run_of(plane, child).state for child in fired[1::2]] == [RunState.QUEUED, RunState.QUEUED]


def test_a_run_in_progress_before_the_batch_skips_its_fire(plane: ControlPlane) -> None:
    skip = save(plane, "skip", concurrency="skip")
    [earlier] = plane.runs.fire([fire(skip, 0)])
    assert earlier is not None
    [later] = plane.runs.fire([fire(skip, 15)])
    assert f"run #{earlier.run_id} was still in progress" in run_of(plane, later).message


def test_the_queue_fills_up_within_a_batch(plane: ControlPlane) -> None:
    rows = [save(plane, f"s{i}") for i in range(5)]
    with plane.db.read() as session:
        waiting = len(session.scalars(select(ScenarioRun.id).where(ScenarioRun.state == RunState.QUEUED)).all())
    plane.max_queued_runs = waiting + 3
    fired = plane.runs.fire([fire(row, 0) for row in rows])
    assert [child.state for child in fired if child] == [RunState.QUEUED] * 3 + [RunState.SKIPPED] * 2
    full = run_of(plane, fired[3])
    assert full.trigger_detail["skipped"] == "queue_full"
    assert f"the run queue is full ({waiting + 3} runs waiting, the limit is {waiting + 3})" in full.message


def test_a_fire_key_that_fired_yields_nothing_in_the_batch_or_later(plane: ControlPlane) -> None:
    row = save(plane, "once")
    other = save(plane, "other")
    fired = plane.runs.fire([fire(row, 0), fire(row, 0)])
    assert fired[0] is not None and fired[1] is None
    again = plane.runs.fire([fire(row, 0), fire(other, 0)])
    assert again[0] is None and again[1] is not None
    assert run_count(plane) == 2


def test_a_key_fired_elsewhere_after_the_look_up_rolls_the_batch_back_and_fires_one_by_one(
    plane: ControlPlane,
) -> None:
    """Another process commits a run of one of the batch's keys after the batch looked its keys up:
    the flush meets the unique ``fire_key``, the batch is rolled back and fired again run by run."""
    rows = [save(plane, f"s{i}") for i in range(4)]
    before = verified(plane)
    [elsewhere] = plane.runs.fire([fire(rows[2], 0)])  # what the other process committed
    assert elsewhere is not None
    looked_up: list[str] = []

    def blind_look_up(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> tuple[str, Any]:
        # The batch's look-up of fire keys, run as if before the other process committed.
        if not looked_up and statement.startswith("SELECT scenario_runs.fire_key"):
            looked_up.append(statement)
            statement = statement.replace("WHERE", "WHERE 1 = 0 AND", 1)
        return statement, parameters

    event.listen(plane.db.engine, "before_cursor_execute", blind_look_up, retval=True)
    try:
        fired = plane.runs.fire([fire(row, 0) for row in rows])
    finally:
        event.remove(plane.db.engine, "before_cursor_execute", blind_look_up)
    assert looked_up
    assert fired[2] is None
    assert all(fired[i] is not None and fired[i].state == RunState.QUEUED for i in (0, 1, 3))  # type: ignore[union-attr]
    assert run_count(plane) == 4
    assert verified(plane) == before + 4  # the rolled-back batch's entries never were


def test_the_audit_chain_verifies_after_batches(plane: ControlPlane) -> None:
    rows = [save(plane, f"s{i}", concurrency="skip") for i in range(6)]
    before = verified(plane)
    first = plane.runs.fire([fire(row, 0) for row in rows])
    second = plane.runs.fire([fire(row, 15) for row in rows])  # skipped: the first runs are queued
    assert verified(plane) == before + 12
    with plane.db.read() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.seq > before).order_by(AuditEntry.seq)).all()
    fired = [child for child in first + second if child is not None]
    assert [entry.details["run"] for entry in entries] == [child.run_id for child in fired]
    for entry, child, row in zip(entries, fired, rows + rows, strict=True):
        assert (entry.actor, entry.action, entry.object_type, entry.project_key) == (
            "system:scheduler",
            "scenario.fire",
            "scenario",
            "ALPHA",
        )
        assert entry.details["state"] == child.state
        assert entry.details["trigger"] == "cron"
        assert entry.details["trigger_detail"] == fire(row, 0 if entry.seq <= before + 6 else 15).detail
        assert "skipped" not in entry.details["trigger_detail"]


def test_a_batch_costs_the_same_statements_whatever_its_size(plane: ControlPlane) -> None:
    rows = [save(plane, f"s{i}", concurrency="parallel") for i in range(40)]
    counts = []
    for size, minute in ((4, 0), (40, 15)):
        with statements(plane) as sent:
            fired = plane.runs.fire([fire(row, minute) for row in rows[:size]])
        assert all(child is not None and child.state == RunState.QUEUED for child in fired)
        counts.append(len(sent))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 14, counts


def test_two_control_planes_firing_the_same_batch_at_once_create_one_run_per_key(
    plane: ControlPlane, db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the two transactions overlap: the one whose flush meets the other's committed
    keys falls back to one run at a time; on SQLite they take turns. Either way each key fires once."""
    rows = [save(plane, f"race-{i}", concurrency="parallel") for i in range(30)]
    other = make_plane(tmp_path / "other", db_url)
    try:
        barrier = threading.Barrier(2)
        fired: list[list[ChildRun | None]] = [[], []]
        errors: list[BaseException] = []

        def race(index: int, target: ControlPlane) -> None:
            try:
                barrier.wait(10)
                fired[index] = target.runs.fire([fire(row, 0) for row in rows])
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=race, args=(i, p)) for i, p in enumerate((plane, other))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        for mine, theirs in zip(*fired, strict=True):
            assert (mine is None) != (theirs is None)
        assert run_count(plane) == 30
    finally:
        other.stop()
    assert verified(plane) > 0
