"""The board: expected fires and what came of them, with a controllable clock, and GET /runs.

The scheduler fires with the test's clock; no run engine runs, so runs are moved along in the store.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.scenarios.uptime import UptimeLog
from himalia.store.orm import Check, CheckResult, Dataset, Scenario, ScenarioRun, utcnow
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.operations import BoardStatus, MissedReason
from himalia.wire.scenarios import RunState, SaveScenario

from ..conftest import LiveAPI

#: Fires are expected after the scenario's last save (the real clock): the tests run two years ahead.
FUTURE = datetime(utcnow().year + 2, 1, 15, tzinfo=UTC)


def admin(plane: ControlPlane) -> Caller:
    return plane.users.caller_for("admin")


def save(plane: ControlPlane, slug: str, **fields: Any) -> int:
    definition = ScenarioDefinition.model_validate(
        {
            "id": slug,
            "name": slug,
            "steps": [{"name": "checks", "type": "run_checks", "dataset": "transactions"}],
            "triggers": [{"type": "time", "schedule": "hourly at :00", "timezone": "Europe/Paris"}],
            **fields,
        }
    )
    plane.scenarios.save_scenario(admin(plane), "ALPHA", SaveScenario(definition=definition))
    with plane.db.read() as session:
        row = session.scalar(select(Scenario.id).where(Scenario.slug == slug))
    assert row is not None
    return row


def end(plane: ControlPlane, run_id: int, state: RunState, started: datetime, seconds: float) -> None:
    with plane.db.write() as session:
        session.execute(
            update(ScenarioRun)
            .where(ScenarioRun.id == run_id)
            .values(state=state, started_at=started, ended_at=started + timedelta(seconds=seconds))
        )


class Clock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def plane(plane: ControlPlane) -> ControlPlane:
    plane.scenarios.delete_scenario(admin(plane), "ALPHA", "nightly")
    return plane


def fire_hours(plane: ControlPlane, clock: Clock, hours: int) -> list[int]:
    """A scheduler started at the clock's time fires on the hour for ``hours`` hours, beating its
    uptime; the runs it created (stamped with the clock, as they would be)."""
    scheduler = plane.new_scheduler(now=clock)
    scheduler.uptime = UptimeLog(plane.db, "test")
    scheduler.uptime.begin(clock())
    scheduler.load()
    created = []
    for _ in range(hours):
        fired = scheduler.fire_due(clock.moment)
        with plane.db.write() as session:
            session.execute(update(ScenarioRun).where(ScenarioRun.id.in_(fired)).values(created_at=clock.moment))
        created += fired
        scheduler.uptime.beat(clock.moment)
        clock.moment += timedelta(hours=1)
    return created


def by_due(board: Any, slug: str) -> dict[datetime, Any]:
    (entry,) = [s for s in board.scenarios if s.scenario == slug]
    return {fire.due_at: fire for fire in entry.fires if fire.due_at is not None}


def test_fires_show_what_came_of_them_and_an_outage_is_grey_with_its_interval(plane: ControlPlane) -> None:
    save(plane, "hourly", concurrency="parallel")
    clock = Clock(FUTURE + timedelta(hours=1))
    first = fire_hours(plane, clock, 3)  # 01:00, 02:00, 03:00 UTC
    assert len(first) == 3
    for run_id, state in zip(first, (RunState.SUCCEEDED, RunState.WARNING, RunState.FAILED), strict=True):
        end(plane, run_id, state, clock.moment, 60)
    clock.moment = FUTURE + timedelta(hours=7)  # 04:00, 05:00, 06:00 passed with no scheduler
    created = fire_hours(plane, clock, 1)
    board = plane.board.board(admin(plane), since=FUTURE + timedelta(minutes=30), now=clock.moment)
    fires = by_due(board, "hourly")
    statuses = [fires[FUTURE + timedelta(hours=h)].status for h in (1, 2, 3)]
    assert statuses == [BoardStatus.SUCCEEDED, BoardStatus.WARNING, BoardStatus.FAILED]
    for hour in (4, 5, 6):
        missed = fires[FUTURE + timedelta(hours=hour)]
        assert missed.status == BoardStatus.MISSED
        assert missed.missed_reason == MissedReason.CONTROL_PLANE_DOWN
        assert "The control plane was down from" in missed.message and "CET" in missed.message
    assert created and fires[FUTURE + timedelta(hours=7)].status == BoardStatus.RUNNING  # queued: blue
    assert board.needs_attention
    assert board.counts[BoardStatus.MISSED] == 3


def test_skipped_fires_name_the_policy_or_the_full_queue(plane: ControlPlane) -> None:
    save(plane, "serial", concurrency="skip")
    clock = Clock(FUTURE + timedelta(hours=1))
    fire_hours(plane, clock, 2)  # the first stays queued, so the second is skipped by the policy
    plane.max_queued_runs = 0
    save(plane, "crowded", concurrency="parallel")
    fire_hours(plane, clock, 1)
    board = plane.board.board(admin(plane), since=FUTURE, now=clock.moment)
    second = by_due(board, "serial")[FUTURE + timedelta(hours=2)]
    assert (second.status, second.missed_reason) == (BoardStatus.MISSED, MissedReason.SKIPPED_BY_POLICY)
    crowded = by_due(board, "crowded")[FUTURE + timedelta(hours=3)]
    assert (crowded.status, crowded.missed_reason) == (BoardStatus.MISSED, MissedReason.QUEUE_FULL)


def test_a_deadline_passed_is_late_and_a_long_run_is_flagged(plane: ControlPlane) -> None:
    save(plane, "due", concurrency="parallel", sla={"ready_by": "03:30", "timezone": "UTC"})
    clock = Clock(FUTURE + timedelta(hours=1))
    runs = fire_hours(plane, clock, 24)  # 01:00 to 00:00 the next day
    for hour, run_id in enumerate(runs, start=1):
        end(plane, run_id, RunState.SUCCEEDED, FUTURE + timedelta(hours=hour), 3600 if hour == 3 else 60)
    board = plane.board.board(admin(plane), since=FUTURE, now=clock.moment)
    fires = by_due(board, "due")
    assert fires[FUTURE + timedelta(hours=2)].status == BoardStatus.SUCCEEDED
    late = fires[FUTURE + timedelta(hours=3)]  # ended at 04:00, its deadline 03:30
    assert late.status == BoardStatus.LATE and "the deadline was" in late.message, late
    assert late.long_running and not fires[FUTURE + timedelta(hours=4)].long_running
    (entry,) = board.scenarios
    assert entry.p95_seconds == 60
    assert entry.deadline == FUTURE + timedelta(days=1, hours=3, minutes=30)


def test_stale_datasets_sit_beside_the_scenarios_that_check_them(plane: ControlPlane) -> None:
    save(plane, "checker")
    with plane.db.write() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == "transactions"))
        assert dataset is not None
        check = Check(dataset_id=dataset.id, name="fresh", type="freshness", params={"max_age": "1h"})
        session.add(check)
        session.flush()
        session.add(
            CheckResult(
                check_id=check.id,
                outcome="OK",
                value={},
                message="fine",
                origin="test",
                evaluated_at=utcnow() - timedelta(hours=1),
            )
        )
        session.add(
            CheckResult(
                check_id=check.id,
                outcome="ERROR",
                value={"newest": "2020-01-01T00:00:00+00:00", "age_seconds": 9.0e7, "max_age": "1h"},
                message="too old",
                origin="test",
            )
        )
    board = plane.board.board(admin(plane), since=utcnow() - timedelta(days=1))
    (entry,) = board.scenarios
    assert [(d.dataset, d.outcome, d.max_age) for d in entry.stale_datasets] == [("transactions", "ERROR", "1h")]
    assert board.stale_datasets == [] and board.needs_attention


def test_a_caller_sees_only_the_projects_they_may_read(plane: ControlPlane) -> None:
    save(plane, "hidden")
    fire_hours(plane, Clock(FUTURE + timedelta(hours=1)), 1)
    nobody = plane.users.caller_for("nogrant")
    assert plane.board.board(nobody, since=FUTURE, now=FUTURE + timedelta(hours=2)).scenarios == []
    reader = plane.users.caller_for("reader")
    assert [s.scenario for s in plane.board.board(reader, since=FUTURE, now=FUTURE + timedelta(hours=2)).scenarios]


def test_the_board_reads_in_a_bounded_number_of_statements(plane: ControlPlane, count_statements: Any) -> None:
    save(plane, "one", concurrency="parallel")
    fire_hours(plane, Clock(FUTURE), 2)
    with count_statements() as few:
        plane.board.board(admin(plane), since=FUTURE, now=FUTURE + timedelta(hours=3))
    for index in range(10):
        save(plane, f"more{index}", concurrency="parallel")
    fire_hours(plane, Clock(FUTURE + timedelta(hours=2)), 3)
    with count_statements() as many:
        plane.board.board(admin(plane), since=FUTURE, now=FUTURE + timedelta(hours=6))
    assert len(many) == len(few), many


def test_runs_across_projects_filter_and_page(plane: ControlPlane, api: LiveAPI) -> None:
    save(plane, "listed", concurrency="parallel")
    runs = fire_hours(plane, Clock(FUTURE), 3)
    end(plane, runs[0], RunState.FAILED, FUTURE, 5)
    page = api.request("GET", "/runs?limit=2").json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["items"][0]["id"] == runs[-1]
    failed = api.request("GET", "/runs?state=failed,aborted").json()
    assert [run["id"] for run in failed["items"]] == [runs[0]]
    assert api.request("GET", "/runs?project=ALPHA&scenario=listed&trigger=cron").json()["total"] == 3
    assert api.request("GET", "/runs?since=7d").json()["total"] == 3
    later = (FUTURE + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.request("GET", f"/runs?since={later}").json()["total"] == 0
    assert api.request("GET", "/runs", role="nogrant").json()["total"] == 0
    assert api.request("GET", "/runs", role="reader").json()["total"] == 3
    assert api.request("GET", "/runs", role="anonymous").status_code == 401
    bad = api.request("GET", "/runs?state=lost")
    assert bad.status_code == 400 and "state" in bad.text
    board = api.request("GET", "/board?since=7d", role="reader")
    assert board.status_code == 200 and board.json()["scenarios"][0]["scenario"] == "listed"
    assert api.request("GET", "/board?since=1000d").status_code == 400


def test_since_is_bounded_however_it_is_written(api: LiveAPI) -> None:
    for since in ("0001-01-01T00:00:00", "1970-01-01T00:00:00Z", "91d", "1000d"):
        for path in ("/board", "/runs"):
            refused = api.request("GET", f"{path}?since={since}")
            assert refused.status_code == 400 and "since" in refused.text, (path, since, refused.text)
    assert api.request("GET", "/board?since=89d").status_code == 200
