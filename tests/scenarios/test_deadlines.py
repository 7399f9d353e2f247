"""Deadline alerts with a controllable clock: late (once, across restarts and two control planes,
cleared by a success), overrun while the run still runs, missed after an outage and for a
policy-skipped fire, only to reporters that asked, audited; deadlines across time zones.

Emails go to a real SMTP server (aiosmtpd), webhooks to a real HTTP receiver. No run engine is
started: runs stay queued, and the tests move them along in the store with the times they need.
"""

import threading
from collections.abc import Iterator
from concurrent.futures import wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from himalia.controlplane import ControlPlane
from himalia.core.documents import DocumentError
from himalia.scenarios.deadlines import DeadlineWatcher, Window, deadlines
from himalia.scenarios.scheduler import Scheduler
from himalia.store.orm import AuditEntry, DeadlineAlert, Scenario, ScenarioRun, utcnow
from himalia.wire.definitions import ScenarioDefinition, load_scenario
from himalia.wire.scenarios import RunState, SaveScenario

from ..conftest import make_plane
from .test_reporting import Hook, Mailbox, free_port, hook_server  # noqa: F401 (a fixture)
from .test_scheduler import Clock

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Both stores (this folder's conftest has SQLite only): the test of two control planes needs PostgreSQL."""
    return str(request.param)


#: Ahead of the real clock, which stamps the scenarios' creation (moved to DAY below).
YEAR = utcnow().year + 2
DAY = datetime(YEAR, 1, 15, tzinfo=UTC)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(mail: tuple[Mailbox, int], plane: ControlPlane) -> Mailbox:
    mail[0].reset()
    plane.mailer.host, plane.mailer.port = "127.0.0.1", mail[1]
    return mail[0]


@pytest.fixture
def hook(hook_server: Hook, plane: ControlPlane) -> Hook:  # noqa: F811
    hook_server.requests.clear()
    plane.webhooks.allowed_destinations = ["127.0.0.1"]
    return hook_server


@pytest.fixture
def plane(plane: ControlPlane) -> ControlPlane:
    plane.scenarios.delete_scenario(plane.users.caller_for("admin"), "ALPHA", "nightly")
    return plane


def alerting(**flags: bool) -> dict[str, Any]:
    return {"type": "email", "to": ["ops@example.com"], "when": "failure", **flags}


def save(plane: ControlPlane, slug: str, **fields: Any) -> int:
    """A scenario of one run_checks step, created (and saved) at DAY 00:00 UTC as far as catch-up
    and deadlines tell."""
    definition = ScenarioDefinition.model_validate(
        {"id": slug, "name": slug, "steps": [{"name": "checks", "type": "run_checks", "dataset": "transactions"}]}
        | fields
    )
    plane.scenarios.save_scenario(plane.users.caller_for("admin"), "ALPHA", SaveScenario(definition=definition))
    with plane.db.write() as session:
        row = session.scalar(select(Scenario.id).where(Scenario.slug == slug))
        session.execute(update(Scenario).where(Scenario.id == row).values(created_at=DAY, updated_at=DAY))
    assert row is not None
    return row


PARIS_AT_TWO = {"type": "time", "schedule": "daily at 02:00", "timezone": "Europe/Paris"}
READY_BY_SEVEN = {"ready_by": "07:00", "timezone": "Europe/Paris"}


def scheduler_at(plane: ControlPlane, now: datetime) -> tuple[Scheduler, DeadlineWatcher, Clock]:
    clock = Clock(now)
    scheduler = plane.new_scheduler(clock)
    scheduler.load()
    [watcher] = scheduler.watchers
    assert isinstance(watcher, DeadlineWatcher)
    return scheduler, watcher, clock


def sent(watcher: DeadlineWatcher) -> None:
    done, _ = wait(watcher.sending, timeout=30)
    for future in done:
        future.result()


def alerts(plane: ControlPlane, row: int) -> list[DeadlineAlert]:
    with plane.db.read() as session:
        return list(session.scalars(select(DeadlineAlert).where(DeadlineAlert.scenario_id == row)))


def set_run(plane: ControlPlane, run_id: int, **values: Any) -> None:
    with plane.db.write() as session:
        session.execute(update(ScenarioRun).where(ScenarioRun.id == run_id).values(**values))


def audit_actions(plane: ControlPlane) -> list[str]:
    with plane.db.read() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.actor == "system:scheduler", AuditEntry.action.like("scenario.alert%"))
                .order_by(AuditEntry.seq)
            )
        )


# -- late -----------------------------------------------------------------------------------------


@sqlite_only
def test_a_late_deadline_alerts_once_at_the_deadline_and_clears_on_success(
    plane: ControlPlane, mailbox: Mailbox
) -> None:
    plane.public_url = "https://himalia.example/"
    row = save(
        plane,
        "scoring",
        triggers=[PARIS_AT_TWO],
        sla=READY_BY_SEVEN,
        reporters=[alerting(on_late=True), {"type": "email", "to": ["quiet@example.com"], "when": "failure"}],
    )
    scheduler, watcher, _ = scheduler_at(plane, at(0))
    # Winter: 02:00 in Paris fires at 01:00 UTC, and 07:00 in Paris is 06:00 UTC: it wakes exactly then.
    assert watcher.watch(at(0)) == at(6)
    [run_id] = scheduler.fire_due(at(1))
    assert watcher.watch(at(5, 59)) == at(6)
    assert alerts(plane, row) == []

    watcher.watch(at(6))
    sent(watcher)
    [alert] = alerts(plane, row)
    assert (alert.kind, alert.occurrence, alert.due_at, alert.run_id) == ("late", at(6).isoformat(), at(6), run_id)
    [message] = mailbox.messages
    assert message["Subject"] == "LATE: scoring not ready by 07:00 Europe/Paris"
    assert [str(to) for to in mailbox.envelopes[0].rcpt_tos] == ["ops@example.com"]  # not the quiet one
    body = message.get_content().replace("\r\n", "\n")
    assert f"Deadline: {YEAR}-01-15 07:00:00 CET (Europe/Paris), {YEAR}-01-15 06:00:00 UTC" in body
    assert f"Last run: #{run_id}, queued" in body
    assert f"Open the run: https://himalia.example/lab?himalia-run=ALPHA/scoring/{run_id}" in body
    assert "Run it again: himalia scenario run ALPHA scoring" in body
    [alert] = alerts(plane, row)
    assert alert.deliveries == [
        {"reporter": "email to ops@example.com", "ok": True, "detail": "sent after 1 attempt(s)"}
    ]

    # Watching again, and a restart (another scheduler over the same store), send nothing more.
    watcher.watch(at(6, 1))
    restart, restarted, _ = scheduler_at(plane, at(6, 5))
    restarted.watch(at(6, 5))
    sent(watcher)
    sent(restarted)
    assert len(mailbox.messages) == 1 and len(alerts(plane, row)) == 1

    # The run succeeds after the deadline: the alert clears.
    set_run(plane, run_id, state=RunState.SUCCEEDED, started_at=at(6, 10), ended_at=at(6, 30))
    restarted.watch(at(6, 31))
    [alert] = alerts(plane, row)
    assert (alert.cleared_at, alert.cleared_by_run) == (at(6, 30), run_id)
    assert audit_actions(plane) == ["scenario.alert", "scenario.alert_report", "scenario.alert_clear"]

    # The next day's deadline is met by a run ending before it: no alert.
    [next_run] = restart.fire_due(at(1, days=1))
    set_run(plane, next_run, state=RunState.WARNING, started_at=at(1, days=1), ended_at=at(1, 5, days=1))
    assert restarted.watch(at(6, days=1)) == at(6, days=2)
    assert len(alerts(plane, row)) == 1


def test_a_frequent_scenarios_earlier_successes_do_not_hide_the_one_that_met_the_deadline(
    plane: ControlPlane, mailbox: Mailbox
) -> None:
    row = save(plane, "scoring", triggers=[PARIS_AT_TWO], sla=READY_BY_SEVEN, reporters=[alerting(on_late=True)])
    scheduler, watcher, _ = scheduler_at(plane, at(0))
    [run_id] = scheduler.fire_due(at(1))
    with plane.db.write() as session:
        fired = session.get(ScenarioRun, run_id)
        assert fired is not None
        fired.state, fired.started_at, fired.ended_at = RunState.SUCCEEDED, at(1), at(2)
        # A late alert standing since three days ago, and 1,200 successes since (the first settles it).
        session.add(
            DeadlineAlert(
                scenario_id=row, project_id=fired.project_id, kind="late", occurrence="old", due_at=at(6, days=-3)
            )
        )
        session.add_all(
            ScenarioRun(
                scenario_id=row,
                project_id=fired.project_id,
                state=RunState.SUCCEEDED,
                trigger="manual",
                requested_by="admin",
                run_as_id=fired.run_as_id,
                definition=fired.definition,
                started_at=at(7, days=-3) + timedelta(minutes=index),
                ended_at=at(7, days=-3) + timedelta(minutes=index, seconds=30),
            )
            for index in range(1200)
        )
    watcher.watch(at(6))
    sent(watcher)
    [old] = alerts(plane, row)  # no late alert for today: the fire's run ended at 02:00 UTC
    assert old.occurrence == "old" and old.cleared_at == at(7, 0, days=-3) + timedelta(seconds=30)
    assert mailbox.messages == []


@sqlite_only
def test_a_reporter_without_on_late_gets_nothing(plane: ControlPlane, mailbox: Mailbox) -> None:
    row = save(plane, "silent", triggers=[PARIS_AT_TWO], sla=READY_BY_SEVEN, reporters=[alerting(on_missed=True)])
    _, watcher, _ = scheduler_at(plane, at(0))
    watcher.watch(at(6))
    sent(watcher)
    [alert] = alerts(plane, row)
    assert alert.kind == "late" and alert.deliveries == []
    assert mailbox.messages == []


def test_deadlines_follow_the_wall_clock_of_their_zone() -> None:
    def scenario(trigger: dict[str, Any], sla: dict[str, Any]) -> ScenarioDefinition:
        return ScenarioDefinition.model_validate(
            {
                "id": "s",
                "name": "s",
                "steps": [{"name": "c", "type": "run_checks", "dataset": "d"}],
                "triggers": [trigger],
                "sla": sla,
            }
        )

    since = datetime(2024, 1, 1, tzinfo=UTC)
    paris = scenario(PARIS_AT_TWO, READY_BY_SEVEN)
    utc = datetime.fromisoformat
    # Summer: 02:00 CEST is 00:00 UTC, 07:00 CEST 05:00 UTC.
    assert deadlines(paris, since, utc("2024-07-15T05:00:00+00:00")) == (
        Window(utc("2024-07-15T00:00:00+00:00"), utc("2024-07-15T05:00:00+00:00")),
        utc("2024-07-16T05:00:00+00:00"),
    )
    # The night clocks go forward (2024-03-31, 02:00 -> 03:00): a deadline at 02:30 is 03:00 CEST.
    early = scenario({"type": "time", "cron": "0 1 * * *", "timezone": "Europe/Paris"}, {"ready_by": "02:30"})
    _, upcoming = deadlines(early, since, utc("2024-03-31T00:10:00+00:00"))
    assert upcoming == utc("2024-03-31T01:00:00+00:00")
    # A fire after the ready-by time is due the next day; without time triggers one deadline a day.
    evening = scenario({"type": "time", "cron": "0 20 * * *", "timezone": "UTC"}, {"ready_by": "07:00"})
    assert deadlines(evening, since, utc("2024-05-02T06:00:00+00:00")) == (
        Window(utc("2024-04-30T20:00:00+00:00"), utc("2024-05-01T07:00:00+00:00")),
        utc("2024-05-02T07:00:00+00:00"),
    )
    after = scenario(
        {"type": "after_scenario", "scenario": "upstream"}, {"ready_by": "07:00", "timezone": "Asia/Tokyo"}
    )
    window, upcoming = deadlines(after, since, utc("2024-05-02T00:00:00+00:00"))  # 09:00 in Tokyo
    assert window == Window(utc("2024-04-30T22:00:00+00:00"), utc("2024-05-01T22:00:00+00:00"))
    assert upcoming == utc("2024-05-02T22:00:00+00:00")


# -- overrun --------------------------------------------------------------------------------------


@sqlite_only
def test_a_run_beyond_its_maximum_duration_alerts_while_it_still_runs(plane: ControlPlane, mailbox: Mailbox) -> None:
    row = save(plane, "long", triggers=[PARIS_AT_TWO], sla={"max_duration": "30m"}, reporters=[alerting(on_late=True)])
    scheduler, watcher, _ = scheduler_at(plane, at(0))
    [run_id] = scheduler.fire_due(at(1))
    assert plane.runs.claim_next("test-worker", 0) == run_id
    set_run(plane, run_id, started_at=at(1))
    assert watcher.watch(at(1, 29)) == at(1, 30)
    watcher.watch(at(1, 30))
    sent(watcher)
    [alert] = alerts(plane, row)
    assert (alert.kind, alert.occurrence, alert.run_id, alert.cleared_at) == ("overrun", f"run:{run_id}", run_id, None)
    assert plane.runs.run_state(run_id) == RunState.RUNNING
    assert mailbox.messages[0]["Subject"] == f"OVERRUN: long still running after 30m (run #{run_id})"
    watcher.watch(at(1, 40))
    assert len(alerts(plane, row)) == 1

    plane.runs.finish_run(run_id, RunState.SUCCEEDED)
    watcher.watch(at(1, 45))
    [alert] = alerts(plane, row)
    assert alert.cleared_by_run == run_id and alert.cleared_at == at(1, 45)
    assert len(mailbox.messages) == 1


# -- missed ---------------------------------------------------------------------------------------


@sqlite_only
def test_an_outage_raises_one_missed_alert_naming_the_fires(plane: ControlPlane, hook: Hook) -> None:
    reporter = {"type": "webhook", "url": hook.url(), "format": "json", "when": "failure", "on_missed": True}
    row = save(plane, "outage", triggers=[{"type": "time", "schedule": "daily at 02:00"}], reporters=[reporter])
    back = at(2, 5, days=3)  # down from before DAY's 02:00 fire until after the fourth
    _, watcher, _ = scheduler_at(plane, back)
    sent(watcher)
    [alert] = alerts(plane, row)
    assert (alert.kind, alert.occurrence, alert.due_at) == ("missed", at(2).isoformat(), at(2))
    assert alert.message == (
        f"outage missed 4 fires from {YEAR}-01-15 02:00 UTC to {YEAR}-01-18 02:00 UTC: no scheduler fired them "
        "(the control plane was down, asleep or failing). The catch-up policy is 'skip': none was run."
    )
    assert len(hook.requests) == 1
    payload = hook.json()
    assert {k: payload[k] for k in ("event", "kind", "project", "scenario", "due_at")} == {
        "event": "scenario_deadline_alert",
        "kind": "missed",
        "project": "ALPHA",
        "scenario": "outage",
        "due_at": at(2).isoformat(),
    }
    # Started again: nothing more.
    _, again, _ = scheduler_at(plane, back + timedelta(minutes=10))
    sent(again)
    assert len(alerts(plane, row)) == 1 and len(hook.requests) == 1
    # Down again two days later (the 'skip' policy ran nothing): a new outage, of the new fires only.
    _, later, _ = scheduler_at(plane, at(2, 5, days=5))
    sent(later)
    assert [a.occurrence for a in alerts(plane, row)] == [at(2).isoformat(), at(2, days=4).isoformat()]
    assert f"missed 2 fires from {YEAR}-01-19 02:00 UTC to {YEAR}-01-20 02:00 UTC" in alerts(plane, row)[1].message


@sqlite_only
def test_a_catch_up_run_is_part_of_the_outage_and_a_policy_skipped_fire_is_missed(plane: ControlPlane) -> None:
    catcher = save(plane, "catcher", triggers=[{"type": "time", "schedule": "daily at 02:00"}], catch_up="run_once")
    scheduler, _, _ = scheduler_at(plane, at(2, 5, days=1))
    [caught_up] = [run.id for run in _runs(plane, catcher)]
    [outage] = alerts(plane, catcher)
    assert outage.occurrence == at(2).isoformat() and outage.run_id == caught_up
    assert outage.message.endswith(f"Catch-up ran the last one: run #{caught_up} (queued).")

    # The catch-up run is still queued at the next fire: the concurrency policy skips it.
    [skipped] = scheduler.fire_due(at(2, days=2))
    missed = [a for a in alerts(plane, catcher) if a.id != outage.id]
    assert [(a.kind, a.occurrence, a.run_id) for a in missed] == [
        ("missed", f"time:{catcher}:{at(2, days=2).isoformat()}", skipped)
    ]
    assert "concurrency policy 'skip'" in missed[0].message
    assert missed[0].due_at == at(2, days=2)


def _runs(plane: ControlPlane, row: int) -> list[ScenarioRun]:
    with plane.db.read() as session:
        return list(session.scalars(select(ScenarioRun).where(ScenarioRun.scenario_id == row)))


# -- two control planes ---------------------------------------------------------------------------


def test_two_control_planes_on_one_store_send_a_late_alert_once(
    plane: ControlPlane, mailbox: Mailbox, mail: tuple[Mailbox, int], db_url: str, tmp_path: Path
) -> None:
    rows = [
        save(plane, f"shared-{i}", triggers=[PARIS_AT_TWO], sla=READY_BY_SEVEN, reporters=[alerting(on_late=True)])
        for i in range(3)
    ]
    other = make_plane(tmp_path / "other", db_url)
    other.mailer.host, other.mailer.port = "127.0.0.1", mail[1]
    try:
        watchers = [scheduler_at(p, at(0))[1] for p in (plane, other)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def watch(watcher: DeadlineWatcher) -> None:
            try:
                barrier.wait(10)
                watcher.watch(at(6))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=watch, args=(w,)) for w in watchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for watcher in watchers:
            sent(watcher)
        assert not errors
        assert [len(alerts(plane, row)) for row in rows] == [1, 1, 1]
        assert sorted(m["Subject"] for m in mailbox.messages) == [
            f"LATE: shared-{i} not ready by 07:00 Europe/Paris" for i in range(3)
        ]
        assert audit_actions(plane).count("scenario.alert") == 3
    finally:
        other.stop()


# -- validation -----------------------------------------------------------------------------------


def test_a_bad_sla_names_its_field_and_line() -> None:
    text = "id: s\nname: s\nsteps:\n  - {name: c, type: run_checks, dataset: d}\nsla:\n  ready_by: '7am'\n"
    with pytest.raises(DocumentError) as raised:
        load_scenario(text, "s.yaml")
    assert "s.yaml:6: sla.ready_by" in str(raised.value)
    with pytest.raises(DocumentError) as raised:
        load_scenario(text.replace("ready_by: '7am'", "timezone: Mars/Olympus"), "s.yaml")
    assert "sla.timezone" in str(raised.value) and "'Mars/Olympus' is not a time zone" in str(raised.value)
