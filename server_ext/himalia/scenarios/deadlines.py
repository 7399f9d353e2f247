"""Deadlines (a scenario's ``sla:``) and their alerts, raised while there is still time to act.

Each expected fire of a time trigger has one deadline: the first ``ready_by`` at or after the fire
time on the wall clock of the deadline's zone (fires sharing one deadline share one window). A
scenario without time triggers has one deadline a day. A deadline is met by a run that ends
succeeded or warning between the window's first fire and the deadline; when it passes unmet, a
``late`` alert is raised at the deadline itself. A run still running after ``max_duration`` raises
an ``overrun`` alert. Fires that did not become runs (the control plane was down, the concurrency
policy or a full queue skipped them) raise ``missed`` alerts, which the scheduler reports here.

An alert is a ``DeadlineAlert`` row, unique per scenario, kind and occurrence: the process whose
insert wins sends it (two control planes on one PostgreSQL send once, a restart sends nothing
again), through the reporters with ``on_late`` (late, overrun) or ``on_missed``, in a thread of
its own so that a slow mail server never holds back the scheduler. Raising and sending are
audited as the scheduler. A late or missed alert is cleared by the first successful run ending
after it; an overrun when its run ends.

The watcher reads the scenarios the scheduler holds (those with triggers, kept fresh on saves)
and costs a few statements per wake whatever the number of scenarios: the standing alerts, the
runs in progress, the successful runs of the windows to judge; then one transaction per alert.
"""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from himalia.core.units import parse_duration
from himalia.identity.audit import AuditRecord
from himalia.identity.caller import Caller
from himalia.identity.service import Service
from himalia.scenarios.reporting import AlertSummary, Delivery, Mailer, WebhookSettings, deliver_alert
from himalia.scenarios.scheduler import MissedFires, ScheduledScenario, Scheduler, Skip
from himalia.store.orm import DeadlineAlert, Project, Scenario, ScenarioRun
from himalia.wire.definitions import (
    EmailReporter,
    ScenarioDefinition,
    Sla,
    TimeTrigger,
    WebhookReporter,
    next_fire_time,
    previous_fire_time,
)
from himalia.wire.scenarios import RunState

SCHEDULER = Caller.system("scheduler")
SUCCESSFUL = (RunState.SUCCEEDED, RunState.WARNING)
#: The reporter flag each kind of alert goes to.
_FLAG = {"late": "on_late", "overrun": "on_late", "missed": "on_missed"}
_TINY = timedelta(microseconds=1)


# -- deadline arithmetic --------------------------------------------------------------------------


def deadline_zone(definition: ScenarioDefinition) -> str:
    """The zone a deadline is written in: the ``sla``'s, else the first time trigger's, else UTC."""
    if definition.sla is not None and definition.sla.timezone:
        return definition.sla.timezone
    return next((t.timezone for t in definition.triggers if isinstance(t, TimeTrigger)), "UTC")


def _wall_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant the zone's clocks show ``at`` on ``day`` or later that day, in UTC: the first
    of two when clocks go back, the end of the skipped span when they go forward (as cron fires)."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # Never shown: fold=1 reads it with the offset after the change (an instant before the change),
    # fold=0 with the offset before (an instant after it). The change lies between.
    before, after = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(first.timestamp())
    offset = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


@dataclass(frozen=True)
class ReadyBy:
    """A daily wall-clock time in a zone, as instants."""

    at: time
    zone: ZoneInfo

    @classmethod
    def of(cls, sla: Sla, zone: str) -> "ReadyBy":
        assert sla.ready_by is not None
        hour, minute = sla.ready_by.split(":")
        return cls(time(int(hour), int(minute)), ZoneInfo(zone))

    def _on(self, moment: datetime, days: range) -> Iterator[datetime]:
        day = moment.astimezone(self.zone).date()
        return (_wall_instant(day + timedelta(days=d), self.at, self.zone) for d in days)

    def at_or_after(self, moment: datetime) -> datetime:
        """The first instant at or after ``moment`` at which it is ``at`` in the zone."""
        return next(instant for instant in self._on(moment, range(-1, 3)) if instant >= moment)

    def before(self, moment: datetime) -> datetime:
        """The last instant strictly before ``moment`` at which it is ``at`` in the zone."""
        return next(instant for instant in self._on(moment, range(1, -3, -1)) if instant < moment)


@dataclass(frozen=True)
class Window:
    """One deadline: met by a successful run ending from ``start`` (its first fire) to ``due``."""

    start: datetime
    due: datetime


def deadlines(definition: ScenarioDefinition, since: datetime, now: datetime) -> tuple[Window | None, datetime]:
    """The latest deadline at or before ``now`` whose window opened after ``since`` (the scenario's
    creation), if any, and the next deadline after ``now``."""
    assert definition.sla is not None
    ready = ReadyBy.of(definition.sla, deadline_zone(definition))
    times = [t for t in definition.triggers if isinstance(t, TimeTrigger)]
    if not times:  # one deadline a day
        due = ready.before(now + _TINY)
        start = ready.before(due)
        return (Window(start, due) if start >= since else None), ready.at_or_after(now + _TINY)

    def window(due: datetime) -> Window | None:
        start = min(next_fire_time(t, max(ready.before(due), since)) for t in times)
        return Window(start, due) if start <= due else None

    due = ready.at_or_after(max(previous_fire_time(t, now) for t in times))
    if due > now:  # the last fire's deadline is ahead: the one before it is the latest passed
        upcoming = due
        due = ready.at_or_after(max(previous_fire_time(t, ready.before(upcoming)) for t in times))
    else:
        upcoming = ready.at_or_after(min(next_fire_time(t, now) for t in times))
    return window(due), upcoming


# -- the watcher ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertChannels:
    """How alerts reach people: the plane's mail server and webhook settings, and its run links."""

    mailer: Mailer
    webhook_key: str
    webhooks: WebhookSettings
    run_link: Callable[[str, str, int], str | None]


@dataclass(frozen=True)
class _Raise:
    """An alert to insert (and send, if the insert wins)."""

    row_id: int
    entry: ScheduledScenario
    kind: str
    occurrence: str
    due_at: datetime
    message: str
    headline: str
    timezone: str
    run_id: int | None = None


class DeadlineWatcher(Service):
    """A scheduler ``Watcher`` raising, sending and clearing deadline alerts; the scheduler's
    ``MissedFireListener`` too."""

    def __init__(self, db: Any, audit: Any, log: Any, scheduler: Scheduler, channels: AlertChannels) -> None:
        super().__init__(db, audit, log)
        self.scheduler = scheduler
        self.channels = channels
        #: Alerts being sent, in their own threads (tests and a clean stop wait for them).
        self.sending: list[Future[None]] = []
        self._senders = ThreadPoolExecutor(2, thread_name_prefix="himalia-alerts")
        #: Scenario row -> when it was created (windows open after it), read once.
        self._created: dict[int, datetime] = {}
        #: Scenario row -> the latest deadline judged (met, or its alert raised).
        self._judged: dict[int, datetime] = {}
        #: Runs whose overrun was raised here (or found raised).
        self._overran: set[int] = set()

    def close(self) -> None:
        self._senders.shutdown(wait=True)

    # -- each wake ----------------------------------------------------------------------------

    def watch(self, now: datetime) -> datetime | None:
        self.sending = [future for future in self.sending if not future.done()]
        watched = {
            row: entry
            for row, entry in self.scheduler.scheduled().items()
            if entry.definition.sla is not None and entry.definition.triggers
        }
        self._read_created(watched)
        wakes: list[datetime] = []
        due: dict[int, Window] = {}
        for row, entry in watched.items():
            if entry.definition.sla is None or entry.definition.sla.ready_by is None or row not in self._created:
                continue
            try:
                window, upcoming = deadlines(entry.definition, self._created[row], now)
            except Exception:  # a stored schedule that never fires: the scheduler says so already
                self.log.exception("The deadline of scenario %s cannot be computed", entry.slug)
                continue
            wakes.append(upcoming)
            if window is not None and self._judged.get(row) != window.due:
                due[row] = window
        standing = self._standing()
        wakes += self._overruns(watched, standing, now)
        self._judge(watched, due, standing)
        return min(wakes) if wakes else None

    def _read_created(self, watched: dict[int, ScheduledScenario]) -> None:
        unknown = [row for row in watched if row not in self._created]
        if unknown:
            with self.db.read() as session:
                rows = session.execute(select(Scenario.id, Scenario.created_at).where(Scenario.id.in_(unknown)))
                self._created.update({row: created for row, created in rows})

    def _standing(self) -> list[DeadlineAlert]:
        with self.db.read() as session:
            return list(session.scalars(select(DeadlineAlert).where(DeadlineAlert.cleared_at.is_(None)).limit(1000)))

    def _overruns(
        self, watched: dict[int, ScheduledScenario], standing: list[DeadlineAlert], now: datetime
    ) -> list[datetime]:
        """Raise the overrun of runs past their maximum duration, clear those of runs that ended;
        return when the next run in progress overruns."""
        limits = {
            row: parse_duration(entry.definition.sla.max_duration)
            for row, entry in watched.items()
            if entry.definition.sla is not None and entry.definition.sla.max_duration
        }
        overrunning = {alert.run_id: alert for alert in standing if alert.kind == "overrun" and alert.run_id}
        if not limits and not overrunning:
            return []
        with self.db.read() as session:
            runs = session.execute(
                select(ScenarioRun.id, ScenarioRun.scenario_id, ScenarioRun.state, ScenarioRun.started_at)
                .where(
                    or_(
                        (ScenarioRun.state == RunState.RUNNING) & ScenarioRun.scenario_id.in_(list(limits)),
                        ScenarioRun.id.in_(list(overrunning)),
                    )
                )
                .limit(1000)
            ).all()
        wakes = []
        for run_id, row, state, started_at in runs:
            if state != RunState.RUNNING:
                if run_id in overrunning:
                    self._clear(overrunning[run_id], run_id, now)
                continue
            if row not in limits or started_at is None or run_id in self._overran:
                continue
            over = started_at + limits[row]
            if now < over:
                wakes.append(over)
                continue
            self._overran.add(run_id)
            if run_id in overrunning:
                continue
            entry = watched[row]
            sla = entry.definition.sla
            assert sla is not None
            self._raise(
                [
                    _Raise(
                        row,
                        entry,
                        "overrun",
                        f"run:{run_id}",
                        over,
                        f"Run #{run_id} of {entry.definition.name} has been running for more than {sla.max_duration} "
                        f"(its maximum duration); it started at {_shown(started_at, deadline_zone(entry.definition))}.",
                        f"OVERRUN: {entry.definition.name} still running after {sla.max_duration} (run #{run_id})",
                        deadline_zone(entry.definition),
                        run_id,
                    )
                ]
            )
        return wakes

    def _judge(
        self, watched: dict[int, ScheduledScenario], due: dict[int, Window], standing: list[DeadlineAlert]
    ) -> None:
        """Raise the late alerts of the deadlines that passed unmet; clear the late and missed
        alerts a successful run settled since."""
        clearable = [alert for alert in standing if alert.kind in ("late", "missed")]
        if not due and not clearable:
            return
        thresholds = [(row, window.start) for row, window in due.items()]
        after = timedelta(microseconds=1)  # a success settles an alert when it ended after its deadline
        thresholds += [(alert.scenario_id, alert.due_at + after) for alert in clearable]
        with self.db.read() as session:
            first = _first_successes(session, thresholds)
            late = [
                row
                for row, window in due.items()
                if (found := first.get((row, window.start))) is None or found[1] > window.due
            ]
            last_runs = _last_runs(session, late)
        for alert in clearable:
            settled = first.get((alert.scenario_id, alert.due_at + after))
            if settled is not None:
                self._clear(alert, *settled)
        for row in due.keys() - set(late):
            self._judged[row] = due[row].due
        for row in late:
            entry, window = watched[row], due[row]
            zone = deadline_zone(entry.definition)
            sla = entry.definition.sla
            assert sla is not None
            last = last_runs.get(row)
            ran = f" The last run, #{last[0]}, is {last[1]}." if last else " It has not run."
            self._raise(
                [
                    _Raise(
                        row,
                        entry,
                        "late",
                        window.due.isoformat(),
                        window.due,
                        f"{entry.definition.name} is late: no successful run finished between "
                        f"{_shown(window.start, zone)} and its deadline, {_shown(window.due, zone)}.{ran}",
                        f"LATE: {entry.definition.name} not ready by {sla.ready_by} {zone}",
                        zone,
                        last[0] if last else None,
                    )
                ]
            )
            self._judged[row] = window.due

    # -- missed fires (the scheduler's listener) -----------------------------------------------

    def outages(self, outages: list[tuple[int, ScheduledScenario, MissedFires]]) -> None:
        """Raise the outages' alerts. With catch-up ``skip`` the scheduler's cursor stays where it was,
        so an outage may reach back into one told already: only the fires since are new. What was
        told is read in one statement, the alerts raised ``RAISE_BATCH`` per transaction."""
        told: dict[int, datetime] = {}
        rows = [row_id for row_id, _, _ in outages]
        with self.db.read() as session:
            for start in range(0, len(rows), RAISE_BATCH):
                found = session.execute(
                    select(DeadlineAlert.scenario_id, func.max(DeadlineAlert.raised_at))
                    .where(
                        DeadlineAlert.scenario_id.in_(rows[start : start + RAISE_BATCH]),
                        DeadlineAlert.kind == "missed",
                        DeadlineAlert.occurrence.not_like("time:%"),
                    )
                    .group_by(DeadlineAlert.scenario_id)
                )
                told.update((row_id, at) for row_id, at in found)
        alerts = []
        for row_id, entry, missed in outages:
            since = told.get(row_id)
            if since is not None and since >= missed.last:
                continue  # told already: a restart's usual case, decided without computing a fire time
            if since is not None and since >= missed.first:
                missed = replace(missed, after=since)
            alerts.append(self._outage_alert(row_id, entry, missed))
        for start in range(0, len(alerts), RAISE_BATCH):
            self._raise(alerts[start : start + RAISE_BATCH])

    @staticmethod
    def _outage_alert(row_id: int, entry: ScheduledScenario, missed: MissedFires) -> "_Raise":
        zone = missed.timezone
        count = f"at least {missed.count}" if missed.bounded else str(missed.count)
        fires = "fire" if missed.count == 1 and not missed.bounded else "fires"
        span = (
            f"at {_shown(missed.first, zone)}"
            if missed.first == missed.last
            else f"from {_shown(missed.first, zone)} to {_shown(missed.last, zone)}"
        )
        if missed.policy == "skip":
            caught = "The catch-up policy is 'skip': none was run."
        elif missed.caught_up is None:
            caught = "Catch-up had already run the last one."
        else:
            caught = f"Catch-up ran the last one: run #{missed.caught_up.run_id} ({missed.caught_up.state})."
        return _Raise(
            row_id,
            entry,
            "missed",
            missed.first.isoformat(),
            missed.first,
            f"{entry.definition.name} missed {count} {fires} {span}: no scheduler fired them (the control "
            f"plane was down, asleep or failing). {caught}",
            f"MISSED: {entry.definition.name} did not run {span}",
            zone,
            missed.caught_up.run_id if missed.caught_up else None,
        )

    def skipped(self, skips: list[Skip]) -> None:
        """One missed alert per skipped run, the runs read in one statement, raised in batches."""
        with self.db.read() as session:
            found = {
                row.id: (row.message, row.trigger_detail)
                for row in session.execute(
                    select(ScenarioRun.id, ScenarioRun.message, ScenarioRun.trigger_detail).where(
                        ScenarioRun.id.in_([skip.run_id for skip in skips])
                    )
                )
            }
        alerts = []
        for skip in skips:
            if skip.run_id not in found:
                continue  # deleted since, with its scenario
            message, detail = found[skip.run_id]
            entry, zone = skip.entry, deadline_zone(skip.entry.definition)
            fire_time = detail.get("fire_time")
            when = _shown(datetime.fromisoformat(fire_time), zone) if fire_time else "its trigger fired"
            due_at = datetime.fromisoformat(fire_time).astimezone(UTC) if fire_time else self.scheduler.now()
            alerts.append(
                _Raise(
                    skip.row_id,
                    entry,
                    "missed",
                    skip.fire_key[:100],
                    due_at,
                    f"{entry.definition.name} did not run at {when}: run #{skip.run_id} was recorded as skipped. "
                    f"{message}",
                    f"MISSED: {entry.definition.name} skipped at {when}",
                    zone,
                    skip.run_id,
                )
            )
        for start in range(0, len(alerts), RAISE_BATCH):
            self._raise(alerts[start : start + RAISE_BATCH])

    # -- raising, sending, clearing -----------------------------------------------------------

    def _raise(self, alerts: list[_Raise]) -> None:
        """Insert the alerts in one transaction and one statement (an occurrence raised already, here
        before a restart or by another control plane, is left as it was); audit and send the new ones."""
        raised: list[tuple[_Raise, int, str, str | None]] = []
        with self.db.write() as session:
            scenario_ids = {alert.row_id for alert in alerts}
            present = set(session.scalars(select(Scenario.id).where(Scenario.id.in_(scenario_ids))))
            alerts = [alert for alert in alerts if alert.row_id in present]  # deleted since it was read
            if not alerts:
                return
            now = self.scheduler.now()
            insert = dialect_insert(session.get_bind().dialect.name)
            added = session.execute(
                insert(DeadlineAlert)
                .on_conflict_do_nothing(index_elements=["scenario_id", "kind", "occurrence"])
                .returning(DeadlineAlert.id, DeadlineAlert.scenario_id, DeadlineAlert.kind, DeadlineAlert.occurrence),
                [
                    {
                        "scenario_id": alert.row_id,
                        "project_id": alert.entry.project_id,
                        "kind": alert.kind,
                        "occurrence": alert.occurrence,
                        "due_at": alert.due_at,
                        "run_id": alert.run_id,
                        "message": alert.message,
                        "deliveries": [],
                        "raised_at": now,
                    }
                    for alert in alerts
                ],
            ).all()
            ids = {(row.scenario_id, row.kind, row.occurrence): row.id for row in added}
            project_ids = {alert.entry.project_id for alert in alerts}
            keys = {
                row.id: row.key
                for row in session.execute(select(Project.id, Project.key).where(Project.id.in_(project_ids)))
            }
            run_ids = {alert.run_id for alert in alerts if alert.run_id}
            states = {
                row.id: row.state
                for row in session.execute(select(ScenarioRun.id, ScenarioRun.state).where(ScenarioRun.id.in_(run_ids)))
            }
            for alert in alerts:
                alert_id = ids.pop((alert.row_id, alert.kind, alert.occurrence), None)
                if alert_id is not None:  # a second alert of the same occurrence in the batch is not new
                    state = states.get(alert.run_id) if alert.run_id else None
                    raised.append((alert, alert_id, keys[alert.entry.project_id], state))
            self.audit.record_many(
                session,
                SCHEDULER,
                [
                    AuditRecord(
                        "scenario.alert",
                        "scenario",
                        alert.entry.slug,
                        project_key=project_key,
                        details={
                            "kind": alert.kind,
                            "occurrence": alert.occurrence,
                            "due_at": alert.due_at.isoformat(),
                            "run": alert.run_id,
                            "reporters": len(self._reporters(alert)),
                        },
                    )
                    for alert, _, project_key, _ in raised
                ],
            )
        for alert, alert_id, project_key, last_state in raised:
            self.log.warning("Scenario %s/%s: %s", project_key, alert.entry.slug, alert.message)
            reporters = self._reporters(alert)
            if not reporters:
                continue
            summary = AlertSummary(
                kind=alert.kind,
                project=project_key,
                scenario_id=alert.entry.slug,
                scenario_name=alert.entry.definition.name,
                headline=alert.headline,
                message=alert.message,
                due_at=alert.due_at,
                timezone=alert.timezone,
                last_run_id=alert.run_id,
                last_run_state=last_state,
                url=self.channels.run_link(project_key, alert.entry.slug, alert.run_id) if alert.run_id else None,
            )
            self.sending.append(self._senders.submit(self._send, alert_id, reporters, summary))

    @staticmethod
    def _reporters(alert: _Raise) -> list[EmailReporter | WebhookReporter]:
        flag = _FLAG[alert.kind]
        return [r for r in alert.entry.definition.reporters if getattr(r, flag)]

    def _send(self, alert_id: int, reporters: Iterable[EmailReporter | WebhookReporter], alert: AlertSummary) -> None:
        channels = self.channels
        deliveries: list[Delivery] = [
            deliver_alert(r, alert, channels.mailer, channels.webhook_key, webhooks=channels.webhooks)
            for r in reporters
        ]
        with self.db.write() as session:
            session.get_one(DeadlineAlert, alert_id).deliveries = [
                {
                    "reporter": d.reporter,
                    "ok": d.sent,
                    "detail": f"sent after {d.attempts} attempt(s)" if d.sent else (d.error or ""),
                }
                for d in deliveries
            ]
            self.audit.record(
                session,
                SCHEDULER,
                "scenario.alert_report",
                "scenario",
                alert.scenario_id,
                project_key=alert.project,
                details={
                    "kind": alert.kind,
                    "deliveries": [{"reporter": d.reporter, "sent": d.sent} for d in deliveries],
                },
            )

    def _clear(self, alert: DeadlineAlert, run_id: int, when: datetime) -> None:
        with self.db.write() as session:
            cleared = session.execute(
                update(DeadlineAlert)
                .where(DeadlineAlert.id == alert.id, DeadlineAlert.cleared_at.is_(None))
                .values(cleared_at=when, cleared_by_run=run_id)
            )
            if cleared.rowcount != 1:  # type: ignore[attr-defined]
                return  # another control plane cleared it
            scenario = session.get_one(Scenario, alert.scenario_id)
            self.audit.record(
                session,
                SCHEDULER,
                "scenario.alert_clear",
                "scenario",
                scenario.slug,
                project_key=session.get_one(Project, alert.project_id).key,
                details={"kind": alert.kind, "occurrence": alert.occurrence, "run": run_id},
            )


#: SQLite's default bound on the selects of one compound statement is 500.
COMPOUND_LIMIT = 400
#: Alerts raised per transaction (a start after a long outage raises one per scenario).
RAISE_BATCH = 500


def _first_successes(
    session: Any, thresholds: list[tuple[int, datetime]]
) -> dict[tuple[int, datetime], tuple[int, datetime]]:
    """For each (scenario, instant), the first successful run that ended at or after it: one row
    per pair (a statement per ``COMPOUND_LIMIT`` pairs), however many runs a frequent scenario has had."""
    pairs = list(dict.fromkeys(thresholds))
    found: dict[tuple[int, datetime], tuple[int, datetime]] = {}
    for start in range(0, len(pairs), COMPOUND_LIMIT):
        found |= _first_successes_of(session, pairs[start : start + COMPOUND_LIMIT])
    return found


def _first_successes_of(
    session: Any, pairs: list[tuple[int, datetime]]
) -> dict[tuple[int, datetime], tuple[int, datetime]]:
    firsts = []
    for index, (row, since) in enumerate(pairs):
        first = (
            select(ScenarioRun.id.label("run"), ScenarioRun.ended_at.label("ended"))
            .where(ScenarioRun.scenario_id == row, ScenarioRun.state.in_(SUCCESSFUL), ScenarioRun.ended_at >= since)
            .order_by(ScenarioRun.ended_at, ScenarioRun.id)
            .limit(1)
            .subquery()
        )
        firsts.append(select(literal(index).label("pair"), first.c.run, first.c.ended))
    return {pairs[index]: (run, ended) for index, run, ended in session.execute(union_all(*firsts))}


def _last_runs(session: Any, rows: list[int]) -> dict[int, tuple[int, str]]:
    """The newest run of each scenario row that has one: (id, state)."""
    if not rows:
        return {}
    newest = (
        select(func.max(ScenarioRun.id))
        .where(ScenarioRun.scenario_id.in_(rows))
        .group_by(ScenarioRun.scenario_id)
        .scalar_subquery()
    )
    found = session.execute(
        select(ScenarioRun.scenario_id, ScenarioRun.id, ScenarioRun.state).where(ScenarioRun.id.in_(newest))
    )
    return {row: (run_id, state) for row, run_id, state in found}


def _shown(moment: datetime, zone: str) -> str:
    """A time as people read it: in the zone it was written in, and in UTC when that differs."""
    text = f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"
    return text if zone == "UTC" else f"{text} ({moment.astimezone(UTC):%H:%M} UTC)"


def dialect_insert(dialect: str) -> Callable[..., Any]:
    """The store's ``INSERT`` with ``ON CONFLICT`` (SQLite and PostgreSQL, the two it runs on)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
