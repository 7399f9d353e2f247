"""The board: for each scenario, the fires the scheduler should have made and what came of them.

Expected fire times come from the time triggers themselves, so a fire that produced no run at all
still shows (grey, with the reason): outside every interval the schedulers recorded alive, the
control plane was down; a run recorded as skipped names the policy or the full queue. Runs that
no fire time accounts for (by hand, after another scenario, on a data change) show beside them.
Every read is one statement for all the scenarios shown, whatever their number.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from logging import Logger
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select

from himalia.core.units import parse_duration
from himalia.identity.caller import Caller
from himalia.identity.projects import projects_granting
from himalia.scenarios.deadlines import ReadyBy, deadline_zone
from himalia.scenarios.runs import READS_RUNS
from himalia.scenarios.scheduler import MISFIRE_GRACE, fire_time_key
from himalia.scenarios.uptime import BEAT_INTERVAL
from himalia.store.db import Database
from himalia.store.orm import (
    Check,
    CheckResult,
    Dataset,
    DeadlineAlert,
    Scenario,
    ScenarioRun,
    SchedulerUptime,
    utcnow,
)
from himalia.wire.definitions import (
    ComputeMetricsStep,
    RunChecksStep,
    ScenarioDefinition,
    TimeTrigger,
    previous_fire_time,
    stored_definition,
)
from himalia.wire.operations import (
    Board,
    BoardFire,
    BoardScenario,
    BoardStatus,
    DeadlineAlertView,
    MissedReason,
    StaleDataset,
)
from himalia.wire.scenarios import RAN_STATES, RunState

#: The most fire times one scenario shows: a scenario firing every minute shows its last hour.
MAX_FIRES = 60
#: The most runs in the window the board reads, newest first.
MAX_RUNS = 5_000
#: The runs a scenario's usual duration is measured on.
DURATION_HISTORY = 20

_STATUS_OF_STATE = {
    RunState.SUCCEEDED: BoardStatus.SUCCEEDED,
    RunState.WARNING: BoardStatus.WARNING,
    RunState.FAILED: BoardStatus.FAILED,
    RunState.ABORTED: BoardStatus.FAILED,
    RunState.RUNNING: BoardStatus.RUNNING,
    RunState.QUEUED: BoardStatus.RUNNING,
}
_SKIPPED_REASONS = {
    "policy": MissedReason.SKIPPED_BY_POLICY,
    "queue_full": MissedReason.QUEUE_FULL,
    "run_as_deactivated": MissedReason.RUN_AS_DEACTIVATED,
}
_ATTENTION = frozenset({BoardStatus.FAILED, BoardStatus.LATE, BoardStatus.MISSED})


@dataclass(frozen=True)
class _Run:
    id: int
    scenario_id: int
    state: RunState
    trigger: str
    detail: dict[str, Any]
    fire_key: str | None
    message: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    def seconds(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        return ((self.ended_at or now) - self.started_at).total_seconds()


def _p95(durations: list[float]) -> float | None:
    """The nearest-rank 95th percentile; ``None`` below five runs (too few to call one long)."""
    if len(durations) < 5:
        return None
    ordered = sorted(durations)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _shown(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


class _Uptime:
    """The intervals some scheduler was alive, to tell an outage from a fire held back."""

    def __init__(self, intervals: Iterable[tuple[datetime, datetime]]) -> None:
        slack = BEAT_INTERVAL + MISFIRE_GRACE
        self.intervals = sorted((start, beat + slack) for start, beat in intervals)

    def outage(self, moment: datetime) -> tuple[datetime | None, datetime | None] | None:
        """``None`` if a scheduler was alive at ``moment``, else the outage around it (ends unknown: ``None``)."""
        before, after = None, None
        for start, end in self.intervals:
            if start <= moment <= end:
                return None
            if end < moment:
                before = end if before is None else max(before, end)
            elif after is None:
                after = start
        return before, after


class BoardService:
    """The morning check's data, for the projects the caller may read."""

    def __init__(self, db: Database, log: Logger) -> None:
        self.db = db
        self.log = log

    def board(
        self,
        caller: Caller,
        since: datetime,
        project: str | None = None,
        scenario: str | None = None,
        now: datetime | None = None,
    ) -> Board:
        now = now or utcnow()
        with self.db.read() as session:
            visible = projects_granting(session, caller, READS_RUNS)
            if project is not None:
                visible = {row: key for row, key in visible.items() if key == project}
            query = select(Scenario.id, Scenario.project_id, Scenario.slug, Scenario.definition, Scenario.updated_at)
            query = query.where(Scenario.project_id.in_(sorted(visible)))
            if scenario is not None:
                query = query.where(Scenario.slug == scenario)
            scenarios = session.execute(query.order_by(Scenario.project_id, Scenario.slug)).all()
            rows = [row[0] for row in scenarios]
            runs = self._runs(session, rows, since)
            history = self._durations(session, rows)
            uptime = _Uptime(
                session.execute(
                    select(SchedulerUptime.started_at, SchedulerUptime.beat_at).where(
                        SchedulerUptime.beat_at >= since - BEAT_INTERVAL
                    )
                ).all()
            )
            alerts = self._alerts(session, rows)
            stale = self._stale(session, visible)
        by_scenario: dict[int, list[_Run]] = defaultdict(list)
        for run in runs:
            by_scenario[run.scenario_id].append(run)
        shown: list[BoardScenario] = []
        placed: set[tuple[str, str]] = set()
        for row, project_id, slug, stored, saved_at in scenarios:
            definition = stored_definition(stored)
            if not definition.active and not by_scenario[row]:
                continue
            key = visible[project_id]
            beside = [d for d in stale if d.project == key and d.dataset in _datasets_named(definition)]
            placed.update((d.project, d.dataset) for d in beside)
            shown.append(
                _scenario(
                    row,
                    key,
                    slug,
                    definition,
                    saved_at,
                    by_scenario[row],
                    history.get(row, []),
                    uptime,
                    alerts.get(row, []),
                    beside,
                    since,
                    now,
                )
            )
        counts = {status: 0 for status in BoardStatus}
        for entry in shown:
            for fire in entry.fires:
                counts[fire.status] += 1
        unplaced = [d for d in stale if (d.project, d.dataset) not in placed]
        attention = (
            bool(stale)
            or any(counts[status] for status in _ATTENTION)
            or any(alert.cleared_at is None for entry in shown for alert in entry.alerts)
        )
        return Board(
            generated_at=now,
            since=since,
            scenarios=shown,
            stale_datasets=unplaced,
            counts=counts,
            needs_attention=attention,
        )

    # -- reads, one statement each ------------------------------------------------------------

    @staticmethod
    def _runs(session: Any, rows: list[int], since: datetime) -> list[_Run]:
        if not rows:
            return []
        found = session.execute(
            select(
                ScenarioRun.id,
                ScenarioRun.scenario_id,
                ScenarioRun.state,
                ScenarioRun.trigger,
                ScenarioRun.trigger_detail,
                ScenarioRun.fire_key,
                ScenarioRun.message,
                ScenarioRun.created_at,
                ScenarioRun.started_at,
                ScenarioRun.ended_at,
            )
            .where(
                ScenarioRun.scenario_id.in_(rows),
                or_(ScenarioRun.created_at >= since, ScenarioRun.state.in_([RunState.QUEUED, RunState.RUNNING])),
            )
            .order_by(ScenarioRun.id.desc())
            .limit(MAX_RUNS)
        ).all()
        return [_Run(r[0], r[1], RunState(r[2]), r[3], r[4] or {}, *r[5:]) for r in found]

    @staticmethod
    def _durations(session: Any, rows: list[int]) -> dict[int, list[float]]:
        """The durations of each scenario's last runs that ran (one windowed statement)."""
        if not rows:
            return {}
        ranked = (
            select(
                ScenarioRun.scenario_id,
                ScenarioRun.started_at,
                ScenarioRun.ended_at,
                func.row_number()
                .over(partition_by=ScenarioRun.scenario_id, order_by=ScenarioRun.id.desc())
                .label("rank"),
            )
            .where(
                ScenarioRun.scenario_id.in_(rows),
                ScenarioRun.state.in_(sorted(RAN_STATES)),
                ScenarioRun.started_at.is_not(None),
                ScenarioRun.ended_at.is_not(None),
            )
            .subquery()
        )
        history: dict[int, list[float]] = defaultdict(list)
        for row, started, ended in session.execute(
            select(ranked.c.scenario_id, ranked.c.started_at, ranked.c.ended_at).where(
                ranked.c.rank <= DURATION_HISTORY
            )
        ):
            history[row].append((_utc(ended) - _utc(started)).total_seconds())
        return history

    @staticmethod
    def _alerts(session: Any, rows: list[int]) -> dict[int, list[DeadlineAlert]]:
        """The alerts still standing (a fire's own colour keeps what was late once it clears)."""
        if not rows:
            return {}
        found: dict[int, list[DeadlineAlert]] = defaultdict(list)
        for alert in session.scalars(
            select(DeadlineAlert)
            .where(DeadlineAlert.scenario_id.in_(rows), DeadlineAlert.cleared_at.is_(None))
            .order_by(DeadlineAlert.raised_at.desc())
            .limit(MAX_RUNS)
        ):
            found[alert.scenario_id].append(alert)
        return found

    @staticmethod
    def _stale(session: Any, visible: dict[int, str]) -> list[StaleDataset]:
        """Datasets whose latest freshness check result did not pass."""
        if not visible:
            return []
        latest = (
            select(func.max(CheckResult.id).label("id"))
            .join(Check, Check.id == CheckResult.check_id)
            .join(Dataset, Dataset.id == Check.dataset_id)
            .where(Check.type == "freshness", Dataset.project_id.in_(sorted(visible)))
            .group_by(CheckResult.check_id)
            .subquery()
        )
        rows = session.execute(
            select(Dataset.project_id, Dataset.name, Check.name, CheckResult)
            .join(Check, Check.id == CheckResult.check_id)
            .join(Dataset, Dataset.id == Check.dataset_id)
            .where(and_(CheckResult.id.in_(select(latest.c.id)), CheckResult.outcome != "OK"))
            .order_by(Dataset.project_id, Dataset.name, Check.name)
        ).all()
        stale = []
        for project_id, dataset, check, result in rows:
            value = result.value if isinstance(result.value, dict) else {}
            newest = value.get("newest")
            stale.append(
                StaleDataset(
                    project=visible[project_id],
                    dataset=dataset,
                    check=check,
                    outcome=result.outcome,
                    newest=datetime.fromisoformat(newest) if isinstance(newest, str) else None,
                    age_seconds=value.get("age_seconds"),
                    max_age=value.get("max_age"),
                    message=result.message,
                    evaluated_at=result.evaluated_at,
                )
            )
        return stale


def _outage_span(outage: tuple[datetime | None, datetime | None], zone: str) -> str:
    began, ended = outage
    span = f"from {_shown(began, zone)}" if began else "before any scheduler had started"
    return span + (f" to {_shown(ended, zone)}" if ended else " (no scheduler has run since)")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _datasets_named(definition: ScenarioDefinition) -> set[str]:
    return {step.dataset for step in definition.steps if isinstance(step, ComputeMetricsStep | RunChecksStep)}


def _expected_fires(definition: ScenarioDefinition, since: datetime, now: datetime) -> list[datetime]:
    """The fire times of its time triggers in [since, now - grace], newest first, at most ``MAX_FIRES``."""
    fires: set[datetime] = set()
    for trigger in definition.triggers:
        if not isinstance(trigger, TimeTrigger):
            continue
        moment = now - MISFIRE_GRACE
        for _ in range(MAX_FIRES):
            due = previous_fire_time(trigger, moment)
            if due < since:
                break
            fires.add(due)
            moment = due - timedelta(microseconds=1)
    return sorted(fires, reverse=True)[:MAX_FIRES]


def _scenario(
    row: int,
    key: str,
    slug: str,
    definition: ScenarioDefinition,
    saved_at: datetime,
    runs: list[_Run],
    durations: list[float],
    uptime: _Uptime,
    alerts: list[DeadlineAlert],
    stale: list[StaleDataset],
    since: datetime,
    now: datetime,
) -> BoardScenario:
    zone = deadline_zone(definition)
    p95 = _p95(durations)
    sla = definition.sla
    ready = ReadyBy.of(sla, zone) if sla is not None and sla.ready_by else None
    max_duration = parse_duration(sla.max_duration) if sla is not None and sla.max_duration else None
    by_key = {run.fire_key: run for run in runs if run.fire_key}
    accounted: set[int] = set()
    fires: list[BoardFire] = []

    def from_run(run: _Run, due: datetime | None) -> BoardFire:
        seconds = run.seconds(now)
        fire = BoardFire(
            due_at=due,
            status=_STATUS_OF_STATE.get(run.state, BoardStatus.MISSED),
            run_id=run.id,
            trigger=run.trigger,
            state=run.state,
            started_at=run.started_at,
            ended_at=run.ended_at,
            duration_seconds=seconds,
            long_running=p95 is not None and seconds is not None and seconds > p95,
            message=run.message,
        )
        if run.state == RunState.SKIPPED:
            fire.missed_reason = _SKIPPED_REASONS.get(str(run.detail.get("skipped")), MissedReason.SKIPPED_BY_POLICY)
        elif run.detail.get("catch_up"):
            outage = uptime.outage(due) if due is not None else None
            why = f": the control plane was down {_outage_span(outage, zone)}" if outage else ""
            fire.message = f"Caught up at {_shown(run.created_at, zone)}{why}. {run.message}".strip()
        overran = max_duration is not None and seconds is not None and seconds > max_duration.total_seconds()
        if run.state == RunState.RUNNING and overran:
            fire.status = BoardStatus.LATE
            fire.message = f"Running for longer than its maximum duration ({sla.max_duration})."  # type: ignore[union-attr]
        return fire

    for due in _expected_fires(definition, since, now):
        run = by_key.get(fire_time_key(row, due))
        if run is not None:
            accounted.add(run.id)
            fire = from_run(run, due)
        elif due < saved_at:
            continue  # before its last save it may not have had this schedule
        else:
            outage = uptime.outage(due)
            if outage is None:
                fire = BoardFire(
                    due_at=due,
                    status=BoardStatus.MISSED,
                    trigger="cron",
                    missed_reason=MissedReason.CATCH_UP_SKIP,
                    message=f"Not run: noticed late, and its catch-up policy is '{definition.catch_up}'.",
                )
            else:
                fire = BoardFire(
                    due_at=due,
                    status=BoardStatus.MISSED,
                    trigger="cron",
                    missed_reason=MissedReason.CONTROL_PLANE_DOWN,
                    message=f"The control plane was down {_outage_span(outage, zone)}.",
                )
        if ready is not None and fire.status in (BoardStatus.SUCCEEDED, BoardStatus.WARNING, BoardStatus.RUNNING):
            due_by = ready.at_or_after(due)
            finished = fire.ended_at if fire.status != BoardStatus.RUNNING else None
            if (finished is None and now > due_by) or (finished is not None and finished > due_by):
                fire.status = BoardStatus.LATE
                when = f"ready at {_shown(finished, zone)}" if finished else "not ready yet"
                fire.message = f"Late: {when}, the deadline was {_shown(due_by, zone)}. {fire.message}".strip()
        fires.append(fire)
    fires += [from_run(run, None) for run in runs if run.id not in accounted and run.created_at >= since]
    fires.sort(key=lambda fire: fire.due_at or (fire.started_at or now), reverse=True)
    times = [t for t in definition.triggers if isinstance(t, TimeTrigger)]
    next_fire = definition.next_fire(now) if times and definition.active else None
    # The next deadline still ahead: the latest fire's while it is unmet, else the next fire's.
    deadline: datetime | None = None
    if ready is not None:
        latest = next((fire for fire in fires if fire.due_at is not None), None)
        pending = latest is not None and latest.status in (BoardStatus.RUNNING, BoardStatus.MISSED)
        if latest is not None and latest.due_at is not None and pending and ready.at_or_after(latest.due_at) > now:
            deadline = ready.at_or_after(latest.due_at)
        elif next_fire is not None:
            deadline = ready.at_or_after(next_fire)
        elif not times:
            deadline = ready.at_or_after(now)
    return BoardScenario(
        project=key,
        scenario=slug,
        name=definition.name,
        active=definition.active,
        timezone=zone,
        schedule=", ".join(f"{t.schedule or t.cron} ({t.timezone})" for t in times) or None,
        next_fire=next_fire,
        sla=sla,
        deadline=deadline,
        status=fires[0].status if fires else None,
        p95_seconds=p95,
        fires=fires,
        alerts=[
            DeadlineAlertView(
                kind=alert.kind,
                due_at=alert.due_at,
                run_id=alert.run_id,
                message=alert.message,
                raised_at=alert.raised_at,
                cleared_at=alert.cleared_at,
                deliveries=alert.deliveries,
            )
            for alert in alerts
        ],
        stale_datasets=stale,
    )
