"""The scheduler: time triggers across time zones and daylight-saving changes, at most one run per
fire time (restarts, two control planes), catch-up, polling and after-scenario triggers, the heap
and the thread.

Most tests drive a ``Scheduler`` with a controllable clock and call ``load()`` / ``fire_due()``
themselves; no run engine is started, so runs stay queued (or skipped) in the store.
"""

import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.scenarios.records import Fire
from himalia.scenarios.scheduler import MISFIRE_GRACE, RETRY_DELAY, Scheduler, next_fire_time, previous_fire_time
from himalia.store.events import ScenarioChanged
from himalia.store.orm import Project, Scenario, ScenarioRun, User, utcnow
from himalia.wire.data import UpdateConnection
from himalia.wire.definitions import ScenarioDefinition, TimeTrigger
from himalia.wire.scenarios import RunRequest, SaveScenario

from ..conftest import make_plane

#: Tests where the backend makes no difference run on SQLite only.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

#: Catch-up counts missed fire times from the scenario's last save, stamped with the real clock:
#: its tests run in a year that is safely ahead of it.
FUTURE = datetime(utcnow().year + 2, 1, 15, tzinfo=UTC)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def plane(plane: ControlPlane) -> ControlPlane:
    """The seeded plane without its seeded scenario (``nightly``, daily at 02:00 UTC), so that every
    fire these tests see is their own."""
    plane.scenarios.delete_scenario(plane.users.caller_for("admin"), "ALPHA", "nightly")
    return plane


def admin(plane: ControlPlane) -> Caller:
    return plane.users.caller_for("admin")


def save(plane: ControlPlane, slug: str, triggers: list[dict[str, Any]], **fields: Any) -> int:
    """Save a scenario of one ``run_checks`` step (no kernel needed); return its row id."""
    definition = ScenarioDefinition.model_validate(
        {
            "id": slug,
            "name": slug,
            "steps": [{"name": "checks", "type": "run_checks", "dataset": "transactions"}],
            "triggers": triggers,
            **fields,
        }
    )
    plane.scenarios.save_scenario(admin(plane), "ALPHA", SaveScenario(definition=definition))
    with plane.db.read() as session:
        row_id = session.scalar(select(Scenario.id).where(Scenario.slug == slug))
    assert row_id is not None
    return row_id


def daily(when: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"type": "time", "schedule": f"daily at {when}", "timezone": timezone}


def cron(expression: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"type": "time", "cron": expression, "timezone": timezone}


def runs(plane: ControlPlane, row_id: int | None = None) -> list[ScenarioRun]:
    with plane.db.read() as session:
        query = select(ScenarioRun).order_by(ScenarioRun.id)
        if row_id is not None:
            query = query.where(ScenarioRun.scenario_id == row_id)
        return list(session.scalars(query))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scheduler_at(plane: ControlPlane, now: datetime) -> tuple[Scheduler, Clock]:
    """A scheduler whose clock reads ``now``, loaded (as on start)."""
    clock = Clock(now)
    scheduler = plane.new_scheduler(clock)
    scheduler.load()
    return scheduler, clock


def step(scheduler: Scheduler, clock: Clock, until: datetime, every: timedelta) -> list[int]:
    """Call ``fire_due`` every ``every`` from the clock's time to ``until`` (inclusive)."""
    created = []
    while clock.now <= until:
        created += scheduler.fire_due(clock.now)
        clock.now += every
    return created


def fire_times(plane: ControlPlane, row_id: int) -> list[str]:
    return [run.trigger_detail["fire_time"] for run in runs(plane, row_id)]


# -- time zones and daylight saving ---------------------------------------------------------------


@sqlite_only
def test_daily_at_two_in_paris_fires_at_one_utc_in_winter_and_midnight_in_summer(plane: ControlPlane) -> None:
    row = save(plane, "paris", [daily("02:00", "Europe/Paris")])
    winter, _ = scheduler_at(plane, at(2024, 1, 14, 23))
    assert winter.next_due() == at(2024, 1, 15, 1)
    assert winter.fire_due(at(2024, 1, 15, 0, 59, 59)) == []
    assert len(winter.fire_due(at(2024, 1, 15, 1))) == 1
    assert winter.next_due() == at(2024, 1, 16, 1)

    summer, _ = scheduler_at(plane, at(2024, 7, 14, 23))
    assert summer.next_due() == at(2024, 7, 15, 0)
    assert len(summer.fire_due(at(2024, 7, 15, 0))) == 1
    assert summer.next_due() == at(2024, 7, 16, 0)

    assert fire_times(plane, row) == ["2024-01-15T02:00:00+01:00", "2024-07-15T02:00:00+02:00"]
    assert [run.fire_key for run in runs(plane, row)] == [
        f"time:{row}:2024-01-15T01:00:00+00:00",
        f"time:{row}:2024-07-15T00:00:00+00:00",
    ]
    # The first run is still queued (no engine here): the second fire is recorded, skipped.
    assert [(run.trigger, run.state) for run in runs(plane, row)] == [("cron", "queued"), ("cron", "skipped")]


@sqlite_only
def test_spring_forward_fires_a_skipped_time_once_when_the_skipped_hour_ends(plane: ControlPlane) -> None:
    """02:30 does not exist in New York on 2024-03-10 (02:00 EST -> 03:00 EDT): as in cron, the fire
    happens once, at 03:00 EDT (07:00Z), and the next one is 02:30 EDT the day after. (croniter alone
    answers 02:30 EDT = 06:30Z, *before* 03:00, as the fire after 03:00, again and again.)"""
    row = save(plane, "spring", [cron("30 2 * * *", "America/New_York")])
    scheduler, clock = scheduler_at(plane, at(2024, 3, 10, 5))
    step(scheduler, clock, at(2024, 3, 10, 10), timedelta(minutes=5))
    assert fire_times(plane, row) == ["2024-03-10T03:00:00-04:00"]
    assert scheduler.next_due() == at(2024, 3, 11, 6, 30)

    paris = save(plane, "spring-paris", [daily("02:00", "Europe/Paris")])  # 02:00 -> 03:00 on 2024-03-31
    scheduler, clock = scheduler_at(plane, at(2024, 3, 30, 23))
    step(scheduler, clock, at(2024, 3, 31, 3), timedelta(minutes=5))
    assert fire_times(plane, paris) == ["2024-03-31T03:00:00+02:00"]


@sqlite_only
def test_fall_back_fires_a_fixed_time_once_and_every_15_minutes_in_both_hours(plane: ControlPlane) -> None:
    """01:30 happens twice in New York on 2024-11-03 (05:30Z EDT, 06:30Z EST)."""
    fixed = save(plane, "fall-fixed", [cron("30 1 * * *", "America/New_York")])
    frequent = save(
        plane, "fall-frequent", [{"type": "time", "schedule": "every 15 minutes", "timezone": "America/New_York"}]
    )
    scheduler, clock = scheduler_at(plane, at(2024, 11, 3, 4, 58))
    step(scheduler, clock, at(2024, 11, 3, 7, 59), timedelta(minutes=1))
    assert fire_times(plane, fixed) == ["2024-11-03T01:30:00-04:00"]
    every = fire_times(plane, frequent)
    assert len(every) == 12  # 01:00-01:45 EDT, 01:00-01:45 EST, 02:00-02:45 EST
    assert every[:5] == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:15:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:45:00-04:00",
        "2024-11-03T01:00:00-05:00",
    ]
    assert len({run.fire_key for run in runs(plane, frequent)}) == 12


def test_fire_times_across_daylight_saving_changes() -> None:
    """The arithmetic alone: strictly increasing, UTC, one fire per fixed time."""
    trigger = TimeTrigger(type="time", cron="30 1 * * *", timezone="America/New_York")
    assert next_fire_time(trigger, at(2024, 11, 3, 5, 30)) == at(2024, 11, 4, 6, 30)
    assert previous_fire_time(trigger, at(2024, 11, 3, 7)) == at(2024, 11, 3, 5, 30)
    assert previous_fire_time(trigger, at(2024, 11, 3, 5, 30)) == at(2024, 11, 3, 5, 30)  # at or before
    for zone in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe"):  # Lord Howe shifts 30 minutes
        for expression in ("*/20 * * * *", "30 2 * * *", "0 1-3 * * *", "45 1 * * *"):
            trigger = TimeTrigger(type="time", cron=expression, timezone=zone)
            for start in (at(2024, 3, 9), at(2024, 3, 30), at(2024, 4, 6), at(2024, 10, 5), at(2024, 10, 26)):
                moment = start
                for _ in range(20):
                    following = next_fire_time(trigger, moment)
                    assert following > moment and following.tzinfo == UTC
                    assert previous_fire_time(trigger, following) == following
                    moment = following


@sqlite_only
def test_every_15_minutes_fires_four_times_an_hour(plane: ControlPlane) -> None:
    row = save(plane, "quarter", [{"type": "time", "schedule": "every 15 minutes"}])
    scheduler, clock = scheduler_at(plane, at(2024, 1, 15, 10))
    step(scheduler, clock, at(2024, 1, 15, 10, 59), timedelta(minutes=1))
    assert fire_times(plane, row) == [f"2024-01-15T10:{m:02d}:00+00:00" for m in (0, 15, 30, 45)]


# -- at most one run per fire time ----------------------------------------------------------------


def test_a_fire_time_yields_one_run_across_calls_and_restarts(plane: ControlPlane) -> None:
    row = save(plane, "once", [daily("02:00")])
    first, _ = scheduler_at(plane, at(2024, 1, 15, 1))
    assert len(first.fire_due(at(2024, 1, 15, 2))) == 1
    assert first.fire_due(at(2024, 1, 15, 2)) == []
    assert first.fire_due(at(2024, 1, 15, 2, 0, 30)) == []
    # A restart 30 s later (or a second scheduler on the same store) sees the fire as due, late by
    # less than the grace, and fires it: the fire key makes that a no-op.
    again, _ = scheduler_at(plane, at(2024, 1, 15, 2, 0, 30))
    assert again.next_due() == at(2024, 1, 15, 2)
    assert again.fire_due(at(2024, 1, 15, 2, 0, 30)) == []
    assert len(runs(plane, row)) == 1


def test_a_restart_just_after_a_fire_time_still_fires_it(plane: ControlPlane) -> None:
    """Late by less than MISFIRE_GRACE is on time, also across a restart (the process was down at 02:00)."""
    row = save(plane, "restart", [daily("02:00")])
    scheduler, _ = scheduler_at(plane, at(2024, 1, 15, 2, 0, 40))
    assert len(scheduler.fire_due(at(2024, 1, 15, 2, 0, 40))) == 1
    [run] = runs(plane, row)
    assert run.trigger_detail == {"fire_time": "2024-01-15T02:00:00+00:00", "trigger": 0}


def test_two_control_planes_firing_at_once_create_one_run(plane: ControlPlane, db_url: str, tmp_path: Path) -> None:
    rows = [save(plane, f"race-{i}", [daily("02:00")]) for i in range(5)]
    other = make_plane(tmp_path / "other", db_url)
    try:
        schedulers = [scheduler_at(p, at(2024, 1, 15, 1))[0] for p in (plane, other)]
        barrier = threading.Barrier(2)
        created: list[list[int]] = [[], []]
        errors: list[BaseException] = []

        def fire(index: int) -> None:
            try:
                barrier.wait(10)
                created[index] = schedulers[index].fire_due(at(2024, 1, 15, 2))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert len(created[0]) + len(created[1]) == 5
        for row in rows:
            assert len(runs(plane, row)) == 1
    finally:
        other.stop()


def test_a_failed_fire_is_retried_for_the_same_fire_time(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    row = save(plane, "retry", [daily("02:00")])
    scheduler, _ = scheduler_at(plane, at(2024, 1, 15, 1))
    real = plane.runs.fire
    calls = []

    def failing_once(fires: list[Fire]) -> Any:
        calls.extend(fire.fire_key for fire in fires)
        if len(calls) == 1:
            raise RuntimeError("the store is unreachable")
        return real(fires)

    monkeypatch.setattr(plane.runs, "fire", failing_once)
    assert scheduler.fire_due(at(2024, 1, 15, 2)) == []
    assert scheduler.next_due() == at(2024, 1, 15, 2) + RETRY_DELAY
    assert len(scheduler.fire_due(at(2024, 1, 15, 2) + RETRY_DELAY)) == 1
    [run] = runs(plane, row)
    assert run.trigger_detail["fire_time"] == "2024-01-15T02:00:00+00:00"
    assert calls == [f"time:{row}:2024-01-15T02:00:00+00:00"] * 2
    assert scheduler.next_due() == at(2024, 1, 16, 2)


# -- catch-up -------------------------------------------------------------------------------------


def test_catch_up_skip_fires_nothing_for_a_missed_time(plane: ControlPlane) -> None:
    row = save(plane, "skipper", [daily("02:00")], catch_up="skip")
    scheduler, _ = scheduler_at(plane, FUTURE.replace(hour=2) + MISFIRE_GRACE + timedelta(seconds=5))
    assert scheduler.fire_due(FUTURE.replace(hour=2, minute=5)) == []
    assert runs(plane, row) == []
    assert scheduler.next_due() == FUTURE.replace(hour=2) + timedelta(days=1)


def test_catch_up_run_once_fires_once_for_the_latest_missed_time(plane: ControlPlane) -> None:
    row = save(plane, "catcher", [daily("02:00")], catch_up="run_once")
    down_until = FUTURE.replace(hour=2, minute=5) + timedelta(days=3)  # missed four fire times
    scheduler, _ = scheduler_at(plane, down_until)
    assert scheduler.fire_due(down_until) == []
    [run] = runs(plane, row)
    expected = (FUTURE + timedelta(days=3)).strftime("%Y-%m-%dT02:00:00+00:00")
    assert run.trigger == "cron" and run.state == "queued"
    assert run.trigger_detail == {"fire_time": expected, "trigger": 0, "catch_up": True}
    assert run.fire_key == f"time:{row}:{expected}"
    # Restarts, at once or later that day, add nothing.
    for restart in (down_until, down_until + timedelta(minutes=55)):
        again, _ = scheduler_at(plane, restart)
        assert again.fire_due(restart) == []
    assert len(runs(plane, row)) == 1


def test_catch_up_defers_to_a_fire_late_by_less_than_the_grace(plane: ControlPlane) -> None:
    """Down for days, back 40 s after a fire time: that fire is on time and is the one run."""
    row = save(plane, "just-late", [daily("02:00")], catch_up="run_once")
    back = FUTURE.replace(hour=2, second=40) + timedelta(days=3)
    scheduler, _ = scheduler_at(plane, back)
    assert len(scheduler.fire_due(back)) == 1
    [run] = runs(plane, row)
    assert "catch_up" not in run.trigger_detail


def test_catch_up_applies_to_fires_missed_while_the_process_slept(plane: ControlPlane) -> None:
    skipper = save(plane, "sleep-skip", [daily("02:00")], catch_up="skip", concurrency="parallel")
    catcher = save(plane, "sleep-catch", [daily("02:00")], catch_up="run_once", concurrency="parallel")
    started = FUTURE.replace(hour=2) - timedelta(days=1)
    scheduler, _ = scheduler_at(plane, started)
    assert len(scheduler.fire_due(started)) == 2  # on time, the day before
    woke = FUTURE.replace(hour=2, minute=10)  # asleep (a suspended laptop, a stuck process) at 02:00
    assert len(scheduler.fire_due(woke)) == 1
    assert len(runs(plane, skipper)) == 1
    assert [run.trigger_detail.get("catch_up", False) for run in runs(plane, catcher)] == [False, True]
    assert scheduler.fire_due(woke + timedelta(minutes=5)) == []
    assert scheduler.next_due() == FUTURE.replace(hour=2) + timedelta(days=1)


def test_catch_up_ignores_times_when_the_scenario_was_inactive(plane: ControlPlane) -> None:
    """Deactivated before a fire time and activated after it (here: now, after 2024), then a restart:
    the time was not missed, the scenario did not want it."""
    row = save(plane, "paused", [daily("02:00")], catch_up="run_once")
    scheduler, _ = scheduler_at(plane, at(2024, 1, 14, 1))
    assert len(scheduler.fire_due(at(2024, 1, 14, 2))) == 1
    plane.scenarios.set_active(admin(plane), "ALPHA", "paused", False)
    plane.scenarios.set_active(admin(plane), "ALPHA", "paused", True)
    restarted, _ = scheduler_at(plane, at(2024, 1, 15, 3))
    assert restarted.fire_due(at(2024, 1, 15, 3)) == []
    assert len(runs(plane, row)) == 1


# -- saves, deactivation, deletion ----------------------------------------------------------------


@sqlite_only
def test_inactive_changed_and_deleted_scenarios(plane: ControlPlane) -> None:
    inactive = save(plane, "inactive", [daily("02:00")], active=False)
    row = save(plane, "moving", [daily("02:00")])
    scheduler, _ = scheduler_at(plane, at(2024, 1, 15, 1))
    unsubscribe = plane.events.subscribe(ScenarioChanged, lambda event: scheduler.scenario_changed(event.row_id))
    try:
        save(plane, "moving", [daily("05:00")])
        assert scheduler.next_due() == at(2024, 1, 15, 5)  # the 02:00 entry is stale
        assert scheduler.fire_due(at(2024, 1, 15, 2)) == []
        assert len(scheduler.fire_due(at(2024, 1, 15, 5))) == 1
        assert fire_times(plane, row) == ["2024-01-15T05:00:00+00:00"]

        plane.scenarios.set_active(admin(plane), "ALPHA", "moving", False)
        assert scheduler.next_due() is None
        plane.scenarios.set_active(admin(plane), "ALPHA", "moving", True)
        assert scheduler.next_due() is not None

        [fired] = runs(plane, row)
        plane.runs.abort(admin(plane), "ALPHA", "moving", fired.id)  # no engine: it would stay queued
        plane.scenarios.delete_scenario(admin(plane), "ALPHA", "moving")
        assert scheduler.next_due() is None
        assert scheduler.fire_due(at(2024, 1, 20)) == []
        assert runs(plane, inactive) == []
    finally:
        unsubscribe()


# -- concurrency policy ---------------------------------------------------------------------------


def test_a_fire_while_a_run_is_in_progress_is_recorded_as_skipped(plane: ControlPlane) -> None:
    row = save(plane, "busy", [{"type": "time", "schedule": "every 15 minutes"}])
    manual = plane.runs.request_run(admin(plane), "ALPHA", "busy", RunRequest())
    scheduler, _ = scheduler_at(plane, at(2024, 1, 15, 9, 59))
    [queued_fire] = scheduler.fire_due(at(2024, 1, 15, 10))
    with plane.db.write() as session:
        session.execute(update(ScenarioRun).where(ScenarioRun.id == manual.id).values(state="running"))
    [running_fire] = scheduler.fire_due(at(2024, 1, 15, 10, 15))
    by_id = {run.id: run for run in runs(plane, row)}
    for fired in (queued_fire, running_fire):
        assert by_id[fired].state == "skipped"
        assert by_id[fired].trigger == "cron"
        assert f"run #{manual.id} was still in progress" in by_id[fired].message
        assert by_id[fired].ended_at is not None


# -- polling triggers -----------------------------------------------------------------------------


@pytest.fixture
def warehouse(plane: ControlPlane, tmp_path: Path) -> Path:
    """A private copy of the seeded warehouse behind connection ``wh`` (the template's is shared)."""
    caller = admin(plane)
    source = plane.connections.get_connection(caller, "wh").params["url"].removeprefix("sqlite:///")
    copy = tmp_path / "warehouse.sqlite"
    shutil.copyfile(source, copy)
    plane.connections.update_connection(caller, "wh", UpdateConnection(params={"url": f"sqlite:///{copy}"}))
    return copy


def add_transactions(warehouse: Path, count: int = 1) -> None:
    with sqlite3.connect(warehouse) as db:
        for _ in range(count):
            db.execute(
                "INSERT INTO transactions_2018 (transaction_id, card_id, purchase_amount) "
                "SELECT max(transaction_id) + 1, 'C00001', 1.0 FROM transactions_2018"
            )


def updated_at(plane: ControlPlane, row: int) -> datetime:
    with plane.db.read() as session:
        stamp = session.scalar(select(Scenario.updated_at).where(Scenario.id == row))
    assert stamp is not None
    return stamp


@sqlite_only
def test_dataset_change_fires_once_after_the_grace(plane: ControlPlane, warehouse: Path) -> None:
    trigger = {"type": "dataset_change", "dataset": "transactions", "interval": "1m", "grace": "5m"}
    row = save(plane, "on-change", [trigger])
    saved = updated_at(plane, row)
    t0 = at(2024, 1, 15, 10)
    scheduler, clock = scheduler_at(plane, t0)
    minute = timedelta(minutes=1)

    def poll(minutes: int) -> list[int]:
        clock.now = t0 + minutes * minute
        return scheduler.fire_due(clock.now)

    assert poll(0) == []  # the baseline
    assert poll(1) == []
    add_transactions(warehouse)
    assert poll(2) == []  # seen: pending since +2
    add_transactions(warehouse)
    assert poll(3) == []  # changed again within the grace: pending since +3
    assert [poll(m) for m in range(4, 8)] == [[]] * 4  # +7 is 4 minutes after +3
    assert len(poll(8)) == 1
    assert [poll(m) for m in range(9, 15)] == [[]] * 6
    add_transactions(warehouse)
    assert poll(15) == []
    assert poll(19) == []  # the scheduler polls only when due; a late poll counts from +15
    assert len(poll(20)) == 1
    fired = runs(plane, row)
    assert [run.trigger for run in fired] == ["dataset_change", "dataset_change"]
    assert fired[0].trigger_detail == {"trigger": 0, "changed_since": (t0 + 3 * minute).isoformat()}
    assert fired[1].trigger_detail["changed_since"] == (t0 + 15 * minute).isoformat()
    assert updated_at(plane, row) == saved  # polls are not saves


@sqlite_only
def test_sql_condition_fires_when_the_value_changes(plane: ControlPlane, warehouse: Path) -> None:
    trigger = {
        "type": "sql_condition",
        "connection": "wh",
        "query": "SELECT max(purchase_amount) FROM transactions_2018",
        "interval": "1m",
    }
    row = save(plane, "on-condition", [trigger])
    t0 = at(2024, 1, 15, 10)
    scheduler, _ = scheduler_at(plane, t0)
    assert scheduler.fire_due(t0) == []
    assert scheduler.fire_due(t0 + timedelta(minutes=1)) == []
    add_transactions(warehouse)  # a small amount: the maximum stays
    assert scheduler.fire_due(t0 + timedelta(minutes=2)) == []
    with sqlite3.connect(warehouse) as db:
        db.execute("UPDATE transactions_2018 SET purchase_amount = 1e9 WHERE transaction_id = 0")
    assert len(scheduler.fire_due(t0 + timedelta(minutes=3))) == 1
    assert scheduler.fire_due(t0 + timedelta(minutes=4)) == []
    assert scheduler.fire_due(t0 + timedelta(minutes=5)) == []
    [run] = runs(plane, row)
    assert run.trigger == "sql_condition"


# -- after another scenario -----------------------------------------------------------------------


def finished_run(plane: ControlPlane, slug: str, state: str) -> int:
    with plane.db.write() as session:
        scenario = session.scalar(select(Scenario).where(Scenario.slug == slug))
        assert scenario is not None
        run = plane.runs.enqueue(session, scenario, trigger="manual", detail={}, requested_by="admin")
        assert run is not None
        run.state, run.ended_at = state, utcnow()
        return run.id


def test_after_scenario_fires_on_the_upstream_outcome(plane: ControlPlane) -> None:
    save(plane, "upstream", [])
    on_success = save(plane, "on-success", [{"type": "after_scenario", "scenario": "upstream"}])
    on_any = save(plane, "on-any", [{"type": "after_scenario", "scenario": "upstream", "on": "any"}])
    scheduler, _ = scheduler_at(plane, at(2024, 1, 15))

    succeeded = finished_run(plane, "upstream", "succeeded")
    assert len(scheduler.run_finished(succeeded)) == 2
    assert scheduler.run_finished(succeeded) == []  # told twice: still one run each
    failed = finished_run(plane, "upstream", "failed")
    assert len(scheduler.run_finished(failed)) == 1
    skipped = finished_run(plane, "upstream", "skipped")
    assert scheduler.run_finished(skipped) == []

    [run] = runs(plane, on_success)
    assert run.trigger == "after_scenario"
    assert run.trigger_detail == {"run": succeeded, "scenario": "upstream", "outcome": "succeeded", "trigger": 0}
    assert [r.trigger_detail["outcome"] for r in runs(plane, on_any)] == ["succeeded", "failed"]


# -- the heap -------------------------------------------------------------------------------------


@sqlite_only
def test_the_heap_holds_the_earliest_fire_and_idle_calls_touch_no_database(
    plane: ControlPlane, count_statements: Callable[[], Any]
) -> None:
    rng = random.Random(7)
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
    definitions = []
    for i in range(2000):
        definitions.append(
            ScenarioDefinition.model_validate(
                {
                    "id": f"bulk-{i}",
                    "name": f"bulk {i}",
                    "steps": [{"name": "checks", "type": "run_checks", "dataset": "transactions"}],
                    "triggers": [cron(f"{rng.randrange(60)} {rng.randrange(24)} * * *", rng.choice(zones))],
                }
            )
        )
    with plane.db.write() as session:
        project_id = session.scalar(select(Project.id).where(Project.key == "ALPHA"))
        user_id = session.scalar(select(User.id).where(User.login == "admin"))
        assert project_id is not None and user_id is not None
        session.add_all(
            Scenario(
                project_id=project_id,
                slug=d.id,
                name=d.name,
                active=True,
                definition=d.model_dump(mode="json"),
                notebooks={},
                owner_id=user_id,
                run_as_id=user_id,
                updated_by_id=user_id,
                revision=1,
                trigger_state={},
            )
            for d in definitions
        )
    now = at(2024, 1, 15, 12, 0, 30)
    scheduler, _ = scheduler_at(plane, now)
    expected = min(
        next_fire_time(t, now - MISFIRE_GRACE) for d in definitions for t in d.triggers if isinstance(t, TimeTrigger)
    )
    independent = min(
        t.next_fire(now - MISFIRE_GRACE) for d in definitions for t in d.triggers if isinstance(t, TimeTrigger)
    )  # croniter's own answer: no daylight-saving change near 15 January
    assert expected == independent
    due = scheduler.next_due()
    assert due == expected

    with count_statements() as statements:
        for seconds in range(0, int((due - now).total_seconds()), 7):
            assert scheduler.fire_due(now + timedelta(seconds=seconds)) == []
        assert scheduler.next_due() == due
    assert statements == []

    with count_statements() as statements:
        assert scheduler.fire_due(due)
    assert statements  # the counter does see the store when something fires


# -- the thread -----------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@sqlite_only
def test_the_thread_fires_on_time_and_wakes_up_on_saves(plane: ControlPlane) -> None:
    # A clock running at real speed, set 1.5 s before 02:00 UTC (of a day after the real now, so
    # that the catch-up of the day before has nothing to consider: the policy is 'skip').
    fire = FUTURE.replace(hour=2)
    shift = [fire - timedelta(seconds=1.5) - utcnow()]
    loaded = save(plane, "threaded", [daily("02:00")])
    scheduler = plane.new_scheduler(lambda: utcnow() + shift[0])
    scheduler.start()
    try:
        assert wait_for(lambda: len(runs(plane, loaded)) == 1, 6)
        # The thread now sleeps until tomorrow's 02:00. Move the clock to 1.5 s before 03:00 and save
        # a scenario due then: the save wakes the thread up.
        shift[0] = fire + timedelta(hours=1) - timedelta(seconds=1.5) - utcnow()
        later = save(plane, "saved-later", [daily("03:00")])
        assert wait_for(lambda: len(runs(plane, later)) == 1, 6)
    finally:
        scheduler.stop()
    assert scheduler._thread is not None and not scheduler._thread.is_alive()
    unheard = save(plane, "saved-after-stop", [daily("04:00")])
    assert unheard not in scheduler._entries  # it no longer listens


@sqlite_only
def test_start_returns_before_the_load_and_a_save_heard_meanwhile_is_kept(plane: ControlPlane) -> None:
    """The thread loads, not start(): a server answers meanwhile. A save heard while the load is
    under way is applied after it, so the row the load read before the save does not win."""
    early = save(plane, "early", [daily("02:00")])
    scheduler = plane.new_scheduler(lambda: FUTURE)
    read = plane.runs.scheduled_scenarios
    release = threading.Event()

    def slow_read() -> Any:
        rows = read()
        release.wait(10)  # the save below happens after the load read its rows
        return rows

    plane.runs.scheduled_scenarios = slow_read  # type: ignore[method-assign]
    started = time.monotonic()
    scheduler.start()
    try:
        assert time.monotonic() - started < 1.0 and not scheduler.loaded.is_set()
        save(plane, "early", [daily("05:00")])  # heard during the load
        release.set()
        assert scheduler.loaded.wait(10)
        entry = scheduler.scheduled()[early]
        assert [t.expression() for t in entry.definition.triggers] == ["0 5 * * *"]  # type: ignore[union-attr]
    finally:
        scheduler.stop()
