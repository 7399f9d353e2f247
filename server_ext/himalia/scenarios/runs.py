"""Runs of scenarios: requesting, reading, aborting and re-running them, and their state in the store.

A run freezes the scenario's definition, notebook snapshots and file tree when it is created, so a re-run
runs exactly the same thing. Who may do what: reading runs follows reading scenarios; running,
aborting and re-running need ``run_scenarios``. Automatic firings carry a ``fire_key`` that is
unique in the database, which is what makes a fire time produce at most one run even with two
control planes on one PostgreSQL.

This module is the only writer of runs, their steps, artifacts and log, and of the scenarios'
trigger state: the engine and the scheduler ask it (``records`` are what it hands them) and learn
of changes through ``store.events``.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, func, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from himalia.compute.tiers import TierService, admit_tier, end_run_usage
from himalia.core.errors import Conflict, HimaliaError, InvalidInput, NotFound, TooBusy
from himalia.core.permissions import ProjectPermission
from himalia.core.units import parse_duration
from himalia.core.variables import INSTANCE_VARIABLES
from himalia.identity.audit import AuditRecord
from himalia.identity.caller import Caller, load_caller
from himalia.identity.projects import projects_granting, require_project
from himalia.identity.service import Service
from himalia.identity.tokens import delete_token, mint_token
from himalia.scenarios.comparison import compare_runs, notebook_diff
from himalia.scenarios.files import tree_entries
from himalia.scenarios.records import (
    Artifact,
    ChildRun,
    EndedRun,
    Fire,
    PollTarget,
    RunLimits,
    ScheduledRow,
    Snapshot,
    StartedRun,
)
from himalia.scenarios.reporting import CheckSummary, Delivery, RunSummary, StepSummary
from himalia.scenarios.service import definition_of, find_scenario, may_read_scenarios
from himalia.scenarios.workers import worker_gone
from himalia.store.db import paginate
from himalia.store.events import AbortRequested, Events, RunFinished, RunProgressed, RunQueued
from himalia.store.orm import (
    Dataset,
    InstanceSetting,
    MetricValue,
    NotebookSnapshot,
    Project,
    RunArtifact,
    RunLogChunk,
    RunStep,
    Scenario,
    ScenarioRun,
    User,
    utcnow,
)
from himalia.wire.common import Page, from_row
from himalia.wire.definitions import NotebookStep, ScenarioDefinition, stored_definition
from himalia.wire.parameters import check_value
from himalia.wire.scenarios import (
    ACTIVE_STATES,
    RAN_STATES,
    ArtifactKind,
    DescribeRun,
    DescribeStep,
    NotebookDiff,
    RerunRequest,
    RunComparison,
    RunRequest,
    RunState,
    StepState,
)

#: How many runs wait in the queue (``max_queued_runs`` bounds it).
QUEUED_COUNT = select(func.count()).where(ScenarioRun.state == RunState.QUEUED)
#: Who may read a project's runs (as ``may_read_scenarios`` says).
READS_RUNS = frozenset({ProjectPermission.READ_CONTENT, ProjectPermission.RUN_SCENARIOS})


@dataclass(frozen=True)
class RunFilters:
    """What ``GET /runs`` narrows to; ``None`` (or empty) does not filter."""

    since: datetime | None = None
    states: frozenset[RunState] = frozenset()
    project: str | None = None
    scenario: str | None = None
    trigger: str | None = None


def describe_run(run: ScenarioRun, project_key: str, artifacts: list[tuple[int, str]]) -> DescribeRun:
    """The run for the API; ``artifacts`` are the (position, kind) of the files its steps produced."""
    return from_row(
        DescribeRun,
        run,
        project=project_key,
        scenario=run.scenario.slug,
        run_as=run.run_as.login,
        artifacts=[artifact_name(position, kind) for position, kind in artifacts],
        steps=[
            from_row(DescribeStep, s, artifacts=[kind for position, kind in artifacts if position == s.position])
            for s in run.steps
        ],
    )


def _artifacts(session: Session, run_id: int) -> list[tuple[int, str]]:
    rows = session.execute(
        select(RunArtifact.position, RunArtifact.kind)
        .where(RunArtifact.run_id == run_id)
        .order_by(RunArtifact.position, RunArtifact.kind)
    )
    return [(position, kind) for position, kind in rows]


class RunService(Service):
    """The one owner of runs, their steps, artifacts and log, and of the scenarios' trigger state.

    People request, read and abort runs here; the engine claims and carries them out through the
    verbs of "the engine's side", the scheduler fires triggers through "the scheduler's side".
    """

    def __init__(
        self,
        db: Any,
        audit: Any,
        log: Any,
        limits: Callable[[], RunLimits],
        tiers: TierService,
        events: Events,
    ) -> None:
        super().__init__(db, audit, log)
        self.limits = limits
        self.tiers = tiers
        self.events = events

    # -- requesting ---------------------------------------------------------------------------

    def request_run(self, caller: Caller, key: str, scenario_id: str, spec: RunRequest) -> DescribeRun:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            definition = definition_of(scenario)
            admit_tier(session, scenario.run_as, definition.tier)
            parameters = self._checked_parameters(session, scenario, definition, spec.parameters)
            run = self.enqueue(
                session,
                scenario,
                definition=definition,
                trigger="manual",
                detail={"user": caller.login},
                requested_by=caller.login,
                parameters=parameters,
                variables=spec.variables,
                manual=True,
            )
            assert run is not None
            self.audit.record(
                session,
                caller,
                "scenario.run",
                "scenario",
                scenario_id,
                project_key=key,
                details={"run": run.id, "parameters": sorted(parameters), "variables": sorted(spec.variables)},
            )
            described = describe_run(run, key, [])
        self._queued(described)
        return described

    def rerun(self, caller: Caller, key: str, scenario_id: str, run_id: int, spec: RerunRequest) -> DescribeRun:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            earlier = self._find_run(session, scenario, run_id)
            definition = definition_of(earlier)
            admit_tier(session, earlier.run_as, definition.tier)
            if earlier.state in ACTIVE_STATES:
                raise Conflict(f"Run #{run_id} is not finished yet.")
            if earlier.purged_at is not None:
                raise Conflict(f"Run #{run_id} cannot run again: retention purged what it ran.")
            start = 0
            if spec.from_failed_step:
                failed = [s.position for s in earlier.steps if s.state in (StepState.FAILED, StepState.ABORTED)]
                if not failed:
                    raise InvalidInput(f"Run #{run_id} has no failed step to start from.", field="from_failed_step")
                start = failed[0]
            run = self.enqueue(
                session,
                scenario,
                trigger="rerun",
                detail={"user": caller.login, "run": run_id},
                requested_by=caller.login,
                parameters=dict(earlier.parameters),
                variables=dict(earlier.variables) if start else {},
                manual=True,
                definition=definition,
                frozen=earlier,
                start_step=start,
            )
            assert run is not None
            self.audit.record(
                session,
                caller,
                "scenario.rerun",
                "scenario",
                scenario_id,
                project_key=key,
                details={"run": run.id, "rerun_of": run_id, "start_step": start},
            )
            described = describe_run(run, key, [])
        self._queued(described)
        return described

    def _queued(self, run: DescribeRun) -> None:
        if run.state == RunState.QUEUED:
            self.events.publish(RunQueued(run.id))

    def enqueue(
        self,
        session: Session,
        scenario: Scenario,
        *,
        trigger: str,
        detail: dict[str, Any],
        requested_by: str,
        parameters: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        fire_key: str | None = None,
        manual: bool = False,
        definition: ScenarioDefinition | None = None,
        frozen: ScenarioRun | None = None,
        start_step: int = 0,
        state: RunState = RunState.QUEUED,
        fired_by: Caller | None = None,
    ) -> ScenarioRun | None:
        """Create a run following the scenario's concurrency policy; ``None`` if ``fire_key`` already fired.

        A manual request refused by the policy or a full queue is an error; an automatic firing
        is recorded as a skipped run so that people see it happened, and audited as ``fired_by``
        (the scheduler's system actor, or the run that started this one). ``definition`` is the
        run's (``frozen``'s, else the scenario's), when the caller parsed it already.
        """
        definition = definition or definition_of(frozen or scenario)
        run_as = session.get_one(User, frozen.run_as_id if frozen else scenario.run_as_id)
        in_progress = session.scalar(
            select(ScenarioRun.id)
            .where(ScenarioRun.scenario_id == scenario.id, ScenarioRun.state.in_(ACTIVE_STATES))
            .order_by(ScenarioRun.id)
        )
        queued = session.scalar(QUEUED_COUNT) or 0
        run = self._new_run(
            scenario,
            definition,
            run_as,
            in_progress,
            queued,
            trigger=trigger,
            detail=detail,
            requested_by=requested_by,
            parameters=parameters,
            variables=variables,
            fire_key=fire_key,
            manual=manual,
            frozen=frozen,
            start_step=start_step,
            state=state,
        )
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
        except IntegrityError:
            if fire_key is None:
                raise
            return None
        if fired_by is not None:
            self.audit.record_many(session, fired_by, [_fire_entry(session, scenario, run, detail)])
        return run

    def _new_run(
        self,
        scenario: Scenario,
        definition: ScenarioDefinition,
        run_as: User,
        in_progress: int | None,
        queued: int,
        *,
        trigger: str,
        detail: dict[str, Any],
        requested_by: str,
        parameters: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        fire_key: str | None = None,
        manual: bool = False,
        frozen: ScenarioRun | None = None,
        start_step: int = 0,
        state: RunState = RunState.QUEUED,
    ) -> ScenarioRun:
        """The run ``enqueue`` creates (not yet added to the session), skipped as the scenario's policies say.

        ``in_progress`` is the scenario's first queued or running run, ``queued`` how many runs wait
        in the queue. Policies in order: a deactivated run-as user, concurrency ``skip`` with a run
        in progress, then a full queue; a manual request they refuse raises.
        """
        skip_reason: str | None = None
        #: Why, for the board's missed fires: ``run_as_deactivated``, ``policy`` or ``queue_full``.
        skipped: str | None = None
        refusal: type[HimaliaError] = Conflict
        if not run_as.active:
            skip_reason = f"its run-as user '{run_as.login}' is deactivated (an administrator can choose another)"
            skipped = "run_as_deactivated"
        elif in_progress is not None and definition.concurrency == "skip":
            skip_reason, skipped = f"run #{in_progress} was still in progress (concurrency policy 'skip')", "policy"
        limit = self.limits().max_queued
        if skip_reason is None and state == RunState.QUEUED and queued >= limit:
            skip_reason, refusal = f"the run queue is full ({queued} runs waiting, the limit is {limit})", TooBusy
            skipped = "queue_full"
        if skip_reason is not None and manual:
            raise refusal(f"'{scenario.slug}' was not started: {skip_reason}.")
        now = utcnow()
        run = ScenarioRun(
            scenario=scenario,
            project_id=scenario.project_id,
            state=RunState.SKIPPED if skip_reason else state,
            trigger=trigger,
            trigger_detail={**detail, "skipped": skipped} if skipped else detail,
            fire_key=fire_key,
            requested_by=requested_by,
            run_as_id=run_as.id,
            definition=dict(frozen.definition if frozen else scenario.definition),
            notebooks=dict(frozen.notebooks if frozen else scenario.notebooks),
            file_tree=frozen.file_tree if frozen else scenario.file_tree,
            parameters=parameters or {},
            variables={**definition.variables, **(variables or {})},
            start_step=start_step,
            rerun_of=frozen.id if frozen else None,
            message=f"Skipped: {skip_reason}." if skip_reason else "",
            created_at=now,
            ended_at=now if skip_reason else None,
        )
        run.steps = [
            RunStep(
                position=i,
                name=step.name,
                type=step.type,
                state=StepState.SKIPPED if skip_reason else StepState.PENDING,
            )
            for i, step in enumerate(definition.steps)
        ]
        return run

    def _checked_parameters(
        self, session: Session, scenario: Scenario, definition: ScenarioDefinition, given: dict[str, Any]
    ) -> dict[str, Any]:
        """Refuse names no notebook step declares and values of the wrong type, before anything runs."""
        declared: dict[str, list[dict[str, Any]]] = {}
        for step in definition.steps:
            if isinstance(step, NotebookStep):
                snapshot = session.get_one(NotebookSnapshot, scenario.notebooks[step.notebook])
                for parameter in snapshot.parameters:
                    declared.setdefault(parameter["name"], []).append(parameter)
        for name, value in given.items():
            field = f"parameters.{name}"
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise InvalidInput(
                    f"{field}: no notebook step of '{scenario.slug}' declares a parameter '{name}' (declared: {known})",
                    field=field,
                )
            for parameter in declared[name]:
                check_value(parameter, value, field)
        return given

    # -- reading ------------------------------------------------------------------------------

    def _scenario_for_read(self, session: Session, caller: Caller, key: str, scenario_id: str) -> Scenario:
        project, permissions = require_project(session, caller, key)
        may_read_scenarios(permissions, key)
        return find_scenario(session, project, scenario_id)

    @staticmethod
    def _find_run(session: Session, scenario: Scenario, run_id: int) -> ScenarioRun:
        run = session.scalar(
            select(ScenarioRun)
            .options(joinedload(ScenarioRun.run_as), joinedload(ScenarioRun.scenario), selectinload(ScenarioRun.steps))
            .where(ScenarioRun.id == run_id, ScenarioRun.scenario_id == scenario.id)
        )
        if run is None:
            raise NotFound(f"There is no run #{run_id} of '{scenario.slug}'.")
        return run

    def list_runs(self, caller: Caller, key: str, scenario_id: str, limit: int, offset: int) -> Page[DescribeRun]:
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            query = (
                select(ScenarioRun)
                .options(
                    joinedload(ScenarioRun.run_as), joinedload(ScenarioRun.scenario), selectinload(ScenarioRun.steps)
                )
                .where(ScenarioRun.scenario_id == scenario.id)
                .order_by(ScenarioRun.id.desc())
            )
            runs, total = paginate(session, query, limit, offset)
            items = [describe_run(run, key, []) for run in runs]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def list_all_runs(self, caller: Caller, filters: RunFilters, limit: int, offset: int) -> Page[DescribeRun]:
        """Runs of every project the caller may read, newest first: three statements whatever the page."""
        with self.db.read() as session:
            visible = projects_granting(session, caller, READS_RUNS)
            if filters.project is not None:
                visible = {row: key for row, key in visible.items() if key == filters.project}
            query = (
                select(ScenarioRun)
                .options(
                    joinedload(ScenarioRun.run_as), joinedload(ScenarioRun.scenario), selectinload(ScenarioRun.steps)
                )
                .where(ScenarioRun.project_id.in_(sorted(visible)))
                .order_by(ScenarioRun.id.desc())
            )
            if filters.since is not None:
                query = query.where(ScenarioRun.created_at >= filters.since)
            if filters.states:
                query = query.where(ScenarioRun.state.in_(sorted(filters.states)))
            if filters.scenario is not None:
                query = query.where(ScenarioRun.scenario.has(Scenario.slug == filters.scenario))
            if filters.trigger is not None:
                query = query.where(ScenarioRun.trigger == filters.trigger)
            runs, total = paginate(session, query, limit, offset)
            items = [describe_run(run, visible[run.project_id], []) for run in runs]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def compare_runs(self, caller: Caller, key: str, scenario_id: str, first: int, second: int) -> RunComparison:
        """Two runs of a scenario side by side (``himalia.scenarios.comparison``)."""
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            a, b = self._find_run(session, scenario, first), self._find_run(session, scenario, second)
            return compare_runs(session, key, a, b)

    def compare_notebook(
        self, caller: Caller, key: str, scenario_id: str, first: int, second: int, path: str
    ) -> NotebookDiff:
        """One notebook of two runs, as nbdime diffs it."""
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            a, b = self._find_run(session, scenario, first), self._find_run(session, scenario, second)
            return notebook_diff(session, path, a.notebooks, b.notebooks)

    def get_run(self, caller: Caller, key: str, scenario_id: str, run_id: int) -> DescribeRun:
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            run = self._find_run(session, scenario, run_id)
            return describe_run(run, key, _artifacts(session, run.id))

    def read_log(self, caller: Caller, key: str, scenario_id: str, run_id: int, after: int = 0) -> tuple[str, int]:
        """The log from chunk ``after`` on, and the cursor to ask for next."""
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            self._find_run(session, scenario, run_id)
            chunks = session.execute(
                select(RunLogChunk.id, RunLogChunk.text)
                .where(RunLogChunk.run_id == run_id, RunLogChunk.id > after)
                .order_by(RunLogChunk.id)
            ).all()
            return "".join(text for _, text in chunks), (chunks[-1][0] if chunks else after)

    def read_artifact(
        self, caller: Caller, key: str, scenario_id: str, run_id: int, kind: ArtifactKind, step: str | None
    ) -> tuple[str, str, bytes]:
        """A notebook step's executed notebook (``ipynb``) or HTML report (``html``): the named step's,
        else the last one produced."""
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            run = self._find_run(session, scenario, run_id)
            positions = [s.position for s in run.steps if s.name == step] if step is not None else None
            artifact = latest_artifact(session, run.id, kind, positions)
            if artifact is None:
                what = "HTML report" if kind == ArtifactKind.HTML else "executed notebook"
                raise NotFound(f"Run #{run_id} has no {what}" + (f" for step '{step}'." if step else "."))
            return artifact_name(artifact.position, artifact.kind), artifact.media_type, artifact.content

    # -- aborting -----------------------------------------------------------------------------

    def abort(self, caller: Caller, key: str, scenario_id: str, run_id: int) -> DescribeRun:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            run = self._find_run(session, scenario, run_id)
            if run.state not in ACTIVE_STATES:
                raise Conflict(f"Run #{run_id} already ended ({run.state}).")
            run.abort_requested = True
            if run.state == RunState.QUEUED:
                run.state, run.ended_at = RunState.ABORTED, utcnow()
                run.message = f"Aborted by {caller.login} before it started."
                _close_steps(run, "")
            self.audit.record(
                session, caller, "scenario.abort", "scenario", scenario_id, project_key=key, details={"run": run_id}
            )
            described = describe_run(run, key, _artifacts(session, run.id))
        self.events.publish(AbortRequested(run_id))
        return described

    # -- the engine's side --------------------------------------------------------------------

    def claim_next(self, worker: str, running_here: int, only: set[int] | None = None) -> int | None:
        """Take the oldest queued run that the limits allow, for ``worker``; ``None`` if there is none."""
        limits = self.limits()
        if running_here >= limits.max_running:
            return None
        with self.db.write() as session:
            query = select(ScenarioRun).where(ScenarioRun.state == RunState.QUEUED).order_by(ScenarioRun.id).limit(200)
            if only is not None:
                query = query.where(ScenarioRun.id.in_(only))
            candidates = session.scalars(query).all()
            if not candidates:
                return None
            running = session.execute(
                select(ScenarioRun.run_as_id, ScenarioRun.scenario_id).where(ScenarioRun.state == RunState.RUNNING)
            ).all()
            per_user: dict[int, int] = {}
            for user_id, _ in running:
                per_user[user_id] = per_user.get(user_id, 0) + 1
            busy_scenarios = {scenario_id for _, scenario_id in running}
            for run in candidates:
                if per_user.get(run.run_as_id, 0) >= limits.max_running_per_user:
                    continue
                policy = run.definition.get("concurrency", "skip")
                if policy != "parallel" and run.scenario_id in busy_scenarios:
                    continue
                claimed = session.execute(
                    update(ScenarioRun)
                    .where(ScenarioRun.id == run.id, ScenarioRun.state == RunState.QUEUED)
                    .values(state=RunState.RUNNING, worker=worker, started_at=utcnow(), heartbeat_at=utcnow())
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return run.id
        return None

    def heartbeat(self, worker: str) -> list[int]:
        """Say this worker's runs are alive; return those whose abort was requested (by any process)."""
        with self.db.write() as session:
            session.execute(
                update(ScenarioRun)
                .where(ScenarioRun.worker == worker, ScenarioRun.state == RunState.RUNNING)
                .values(heartbeat_at=utcnow())
            )
            return list(
                session.scalars(
                    select(ScenarioRun.id).where(
                        ScenarioRun.worker == worker,
                        ScenarioRun.state == RunState.RUNNING,
                        ScenarioRun.abort_requested,
                    )
                )
            )

    def recover(self, stale_after: timedelta) -> list[int]:
        """Mark failed the runs whose control plane stopped: its process is gone from this host, or it
        has not sent a heartbeat for ``stale_after``."""
        now = utcnow()
        with self.db.write() as session:
            running = session.scalars(
                select(ScenarioRun)
                .options(selectinload(ScenarioRun.steps))
                .where(ScenarioRun.state == RunState.RUNNING)
            ).all()
            recovered = []
            for run in running:
                gone = worker_gone(run.worker)
                stale = run.heartbeat_at is None or now - run.heartbeat_at > stale_after
                if not (gone or stale):
                    continue
                seen = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
                run.state, run.ended_at = RunState.FAILED, now
                run.message = (
                    f"The control plane running this run ({run.worker}) stopped; last heard of at {seen}. "
                    "Marked failed when that was noticed."
                )
                _close_steps(run, "interrupted: the control plane stopped")
                delete_token(session, run.token_id)
                recovered.append(run.id)
                self.audit.record(
                    session,
                    Caller.system("recovery"),
                    "scenario.recover",
                    "scenario",
                    session.get_one(Scenario, run.scenario_id).slug,
                    project_key=session.get_one(Project, run.project_id).key,
                    details={"run": run.id, "worker": run.worker, "last_heartbeat": seen, "state": RunState.FAILED},
                )
            end_run_usage(session, recovered)
            return recovered

    def start_run(self, run_id: int) -> StartedRun:
        """Everything a claimed run needs to execute, its token minted and its tier usage opened.

        Raises ``HimaliaError`` when the run cannot start (its user deactivated, its tier closed to
        them); the engine then finishes it failed with that reason.
        """
        with self.db.write() as session:
            run = session.get_one(ScenarioRun, run_id, options=[selectinload(ScenarioRun.scenario)])
            project = session.get_one(Project, run.project_id)
            user = session.get_one(User, run.run_as_id)
            if not user.active:  # deactivated while the run was queued
                raise Conflict(f"its run-as user '{user.login}' is deactivated")
            actor = load_caller(session, user, client_address=f"run #{run_id}", project_scope=project.id, run_id=run_id)
            definition = stored_definition(run.definition)
            lifetime = parse_duration(definition.timeout) if definition.timeout else timedelta(hours=24)
            token, value = mint_token(
                session,
                user.id,
                f"run #{run_id} of {run.scenario.slug}",
                project.id,
                utcnow() + lifetime + timedelta(minutes=10),
            )
            run.token_id = token.id
            self.tiers.open_run_usage(session, user, definition.tier, run_id)
            setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
            return StartedRun(
                run_id=run_id,
                project_key=project.key,
                scenario_slug=run.scenario.slug,
                definition=definition,
                notebooks=dict(run.notebooks),
                files=tree_entries(session, run.file_tree),
                parameters=dict(run.parameters),
                variables=dict(run.variables),
                base_variables={**(setting.value if setting else {}), **project.variables},
                start_step=run.start_step,
                rerun_of=run.rerun_of,
                actor=actor,
                token=value,
            )

    def snapshot(self, digest: str) -> Snapshot:
        with self.db.read() as session:
            row = session.get_one(NotebookSnapshot, digest)
            return Snapshot(row.digest, row.content, {p["name"]: p for p in row.parameters})

    def start_step(self, run_id: int, position: int, attempt: int) -> None:
        with self.db.write() as session:
            step = session.get_one(RunStep, (run_id, position))
            step.state, step.message, step.attempts = StepState.RUNNING, "", attempt
            step.started_at, step.ended_at = utcnow(), None
        self.events.publish(RunProgressed(run_id))

    def skip_step(self, run_id: int, position: int, reason: str) -> None:
        with self.db.write() as session:
            step = session.get_one(RunStep, (run_id, position))
            step.state, step.message = StepState.SKIPPED, reason
        self.events.publish(RunProgressed(run_id))

    def finish_step(
        self,
        run_id: int,
        position: int,
        state: StepState,
        message: str,
        outputs: dict[str, Any],
        variables: dict[str, Any] | None = None,
    ) -> None:
        """Record a step's outcome, and the run's variables when the step changed them."""
        with self.db.write() as session:
            step = session.get_one(RunStep, (run_id, position))
            step.state, step.message, step.outputs, step.ended_at = state, message[:10_000], outputs, utcnow()
            if variables is not None:
                session.get_one(ScenarioRun, run_id).variables = dict(variables)
        self.events.publish(RunProgressed(run_id))

    def add_artifacts(self, run_id: int, position: int, artifacts: list[Artifact]) -> dict[str, Any]:
        """Keep what a notebook step produced (replacing an earlier attempt's); return the metrics
        its kernel recorded, which the step's outputs show (see ``step_metrics``)."""
        with self.db.write() as session:
            for artifact in artifacts:
                session.merge(
                    RunArtifact(
                        run_id=run_id,
                        position=position,
                        kind=artifact.kind,
                        media_type=artifact.media_type,
                        content=artifact.content,
                    )
                )
            return step_metrics(session, run_id, position)

    def append_log(self, run_id: int, text: str) -> None:
        with self.db.write() as session:
            session.add(RunLogChunk(run_id=run_id, text=text))

    def request_child_run(self, parent: StartedRun, scenario_slug: str, worker: str, wait: bool) -> ChildRun:
        """Request a run of another scenario of the parent's project (``run_scenario``); a run
        waited for is claimed at once by ``worker``, which carries it out inside the parent's slot."""
        with self.db.write() as session:
            target = session.scalar(
                select(Scenario)
                .join(Project, Project.id == Scenario.project_id)
                .where(Project.key == parent.project_key, Scenario.slug == scenario_slug)
            )
            if target is None:
                raise NotFound(f"there is no scenario '{scenario_slug}' any more")
            child = self.enqueue(
                session,
                target,
                trigger="scenario",
                detail={"run": parent.run_id, "scenario": parent.scenario_slug},
                requested_by=parent.actor.login,
                state=RunState.RUNNING if wait else RunState.QUEUED,
                fired_by=parent.actor,
            )
            assert child is not None
            if child.state == RunState.RUNNING:
                child.worker, child.started_at, child.heartbeat_at = worker, utcnow(), utcnow()
            started = ChildRun(child.id, RunState(child.state))
        if started.state == RunState.QUEUED:
            self.events.publish(RunQueued(started.run_id))
        return started

    def run_state(self, run_id: int) -> RunState:
        with self.db.read() as session:
            return RunState(session.get_one(ScenarioRun, run_id).state)

    def finish_run(
        self, run_id: int, state: RunState, message: str = "", variables: dict[str, Any] | None = None
    ) -> None:
        """End a run: its state, the steps it did not reach, its token and its tier usage.

        Subscribers learn of it (``RunFinished``) once the transaction committed.
        """
        with self.db.write() as session:
            run = session.get_one(ScenarioRun, run_id, options=[selectinload(ScenarioRun.steps)])
            run.state, run.ended_at = state, utcnow()
            if message:
                run.message = message
            if variables is not None:
                run.variables = variables
            _close_steps(run, None)
            delete_token(session, run.token_id)
            end_run_usage(session, [run_id])
        self.events.publish(RunFinished(run_id))

    def record_deliveries(self, run_id: int, deliveries: list[Delivery]) -> None:
        """Keep on the run what became of its reports, and audit them (who was told what)."""
        with self.db.write() as session:
            run = session.get_one(ScenarioRun, run_id, options=[joinedload(ScenarioRun.scenario)])
            run.deliveries = [
                {
                    "reporter": d.reporter,
                    "sent": d.sent,
                    "attempts": d.attempts,
                    "error": d.error,
                    "skipped_reason": d.skipped_reason,
                }
                for d in deliveries
            ]
            self.audit.record(
                session,
                Caller.system("reporter"),
                "scenario.report",
                "scenario",
                run.scenario.slug,
                project_key=session.get_one(Project, run.project_id).key,
                details={"run": run_id, "deliveries": [{"reporter": d.reporter, "sent": d.sent} for d in deliveries]},
            )

    def summarize(
        self,
        run: StartedRun,
        url: str | None,
        dataset_csv: Callable[[str, int], bytes] | None = None,
        failing_rows: Callable[[], list[tuple[str, str, dict[str, Any]]]] | None = None,
    ) -> RunSummary:
        """What reporters say about a finished run."""
        with self.db.read() as session:
            row = session.get_one(ScenarioRun, run.run_id, options=[selectinload(ScenarioRun.steps)])
            previous = session.scalar(
                select(ScenarioRun.state)
                .where(
                    ScenarioRun.scenario_id == row.scenario_id,
                    ScenarioRun.id < row.id,
                    ScenarioRun.state.in_(RAN_STATES),
                )
                .order_by(ScenarioRun.id.desc())
                .limit(1)
            )
            report = latest_artifact(session, run.run_id, ArtifactKind.HTML)
            log = "".join(
                session.scalars(
                    select(RunLogChunk.text).where(RunLogChunk.run_id == run.run_id).order_by(RunLogChunk.id)
                )
            )
            detail = row.trigger_detail
            trigger = " ".join(str(v) for v in (row.trigger, detail.get("user") or detail.get("fire_time") or "") if v)
            return RunSummary(
                project=run.project_key,
                scenario_id=run.scenario_slug,
                scenario_name=run.definition.name,
                run_id=row.id,
                outcome=RunState(row.state),
                previous_outcome=RunState(previous) if previous else None,
                trigger=trigger,
                started_at=row.started_at,
                ended_at=row.ended_at,
                steps=summary_steps(row),
                checks=summary_checks(row),
                variables=dict(row.variables),
                message=row.message,
                url=url,
                report_html=report.content if report else None,
                log=log,
                dataset_csv=dataset_csv,
                failing_rows=failing_rows,
                run_as_email=row.run_as.email,
            )

    # -- the scheduler's side -----------------------------------------------------------------

    def scheduled_scenarios(self) -> list[ScheduledRow]:
        """Every active scenario and the fire time of its last time-triggered run, in one statement
        (a scheduler's start reads 10,000 of them); definitions as their JSON text, for
        ``stored_definition`` to parse and validate at once."""
        last_cron = (
            select(ScenarioRun.scenario_id, func.max(ScenarioRun.id).label("run_id"))
            .where(ScenarioRun.trigger == "cron")
            .group_by(ScenarioRun.scenario_id)
            .subquery()
        )
        with self.db.read() as session:
            rows = session.execute(
                select(
                    Scenario.id,
                    Scenario.project_id,
                    Scenario.slug,
                    cast(Scenario.definition, Text),
                    Scenario.updated_at,
                    ScenarioRun.trigger_detail,
                )
                .outerjoin(last_cron, last_cron.c.scenario_id == Scenario.id)
                .outerjoin(ScenarioRun, ScenarioRun.id == last_cron.c.run_id)
                .where(Scenario.active)
            ).all()
        return [
            ScheduledRow(row_id, project_id, slug, definition, saved_at, (last or {}).get("fire_time"))
            for row_id, project_id, slug, definition, saved_at, last in rows
        ]

    def scheduled_scenario(self, row_id: int) -> tuple[int, str, ScenarioDefinition] | None:
        """The project row, slug and definition of an active scenario; ``None`` if inactive or gone."""
        with self.db.read() as session:
            scenario = session.get(Scenario, row_id)
            if scenario is None or not scenario.active:
                return None
            return scenario.project_id, scenario.slug, stored_definition(scenario.definition)

    def last_time_fire(self, row_id: int) -> tuple[datetime | None, str | None]:
        """When the scenario was last saved, and the fire time of its last time-triggered run."""
        with self.db.read() as session:
            saved_at = session.scalar(select(Scenario.updated_at).where(Scenario.id == row_id))
            last = session.scalar(
                select(ScenarioRun.trigger_detail)
                .where(ScenarioRun.scenario_id == row_id, ScenarioRun.trigger == "cron")
                .order_by(ScenarioRun.id.desc())
                .limit(1)
            )
        return saved_at, (last["fire_time"] if last else None)

    def fire(self, fires: Sequence[Fire]) -> list[ChildRun | None]:
        """Runs fired by the scheduler, in one transaction, each audited and following its scenario's
        policies as ``enqueue`` does (a burst of 1,000 fires must not pay 1,000 commits); ``None`` for
        a fire whose scenario is gone or inactive, or whose ``fire_key`` already fired (here or in
        another process).

        The batch costs a bounded number of statements whatever its size (``_fire_together``). When
        another process fires one of its keys between the look-up and the flush, the unique
        ``fire_key`` refuses the flush: the batch is rolled back and fired again one run at a time
        through ``enqueue``, each in a savepoint that catches its duplicate.
        """
        if not fires:
            return []
        try:
            with self.db.write() as session:
                fired = self._fire_together(session, fires)
        except IntegrityError:
            self.log.info("%d fires: a fire key fired concurrently elsewhere; firing them one by one", len(fires))
            with self.db.write() as session:
                fired = self._fire_each(session, fires)
        for child in fired:
            if child is not None and child.state == RunState.QUEUED:
                self.events.publish(RunQueued(child.run_id))
        return fired

    def _fire_together(self, session: Session, fires: Sequence[Fire]) -> list[ChildRun | None]:
        """The batch as ``enqueue`` would make it run by run, read and written in a few statements:
        the scenarios' runs in progress in one grouped query, the queue's length once (then counted
        on as runs are queued), the fire keys that fired already in one query, the runs and steps in
        one flush and the audit entries appended together (one head, one clock)."""
        scenarios, held = _fire_scenarios(session, fires)
        live = [s.id for s in scenarios.values() if s.active]
        in_progress: dict[int, int] = {
            row_id: run_id
            for row_id, run_id in session.execute(
                select(ScenarioRun.scenario_id, func.min(ScenarioRun.id))
                .where(ScenarioRun.scenario_id.in_(live), ScenarioRun.state.in_(ACTIVE_STATES))
                .group_by(ScenarioRun.scenario_id)
            )
        }
        queued = session.scalar(QUEUED_COUNT) or 0
        fired_keys = set(
            session.scalars(select(ScenarioRun.fire_key).where(ScenarioRun.fire_key.in_({f.fire_key for f in fires})))
        )
        repeated = {row_id for row_id, count in Counter(f.row_id for f in fires).items() if count > 1}
        runs: list[ScenarioRun | None] = []
        for fire in fires:
            scenario = scenarios.get(fire.row_id)
            if scenario is None or not scenario.active or fire.fire_key in fired_keys:
                runs.append(None)
                continue
            fired_keys.add(fire.fire_key)
            run = self._new_run(
                scenario,
                definition_of(scenario),
                session.get_one(User, scenario.run_as_id),
                in_progress.get(scenario.id),
                queued,
                trigger=fire.trigger,
                detail=fire.detail,
                requested_by="scheduler",
                fire_key=fire.fire_key,
            )
            session.add(run)
            runs.append(run)
            if run.state == RunState.QUEUED:
                queued += 1
                if scenario.id not in in_progress and scenario.id in repeated:
                    session.flush()  # a later fire of this scenario in the batch names this run as in progress
                    in_progress[scenario.id] = run.id
        _number_for_sqlite(session, runs)
        session.flush()
        entries = [
            _fire_entry(session, scenarios[fire.row_id], run, fire.detail)
            for fire, run in zip(fires, runs, strict=True)
            if run is not None
        ]
        self.audit.record_many(session, Caller.system("scheduler"), entries)
        del held
        return [ChildRun(run.id, RunState(run.state)) if run is not None else None for run in runs]

    def _fire_each(self, session: Session, fires: Sequence[Fire]) -> list[ChildRun | None]:
        """The batch one run at a time through ``enqueue``, each in a savepoint: slower, but a fire key
        that fired elsewhere meanwhile costs only its own run."""
        scenarios, held = _fire_scenarios(session, fires)
        fired: list[ChildRun | None] = []
        for fire in fires:
            scenario = scenarios.get(fire.row_id)
            run = None
            if scenario is not None and scenario.active:
                run = self.enqueue(
                    session,
                    scenario,
                    trigger=fire.trigger,
                    detail=fire.detail,
                    requested_by="scheduler",
                    fire_key=fire.fire_key,
                    fired_by=Caller.system("scheduler"),
                )
            fired.append(ChildRun(run.id, RunState(run.state)) if run is not None else None)
        del held
        return fired

    def poll_target(self, row_id: int, index: int) -> PollTarget | None:
        """What a polling trigger observes with; ``None`` when the scenario is gone or runs as someone deactivated."""
        with self.db.read() as session:
            scenario = session.get(Scenario, row_id)
            if scenario is None:
                return None
            run_as = session.get_one(User, scenario.run_as_id)
            if not run_as.active:
                return None  # nothing is observed as someone deactivated (a fire would be skipped)
            actor = load_caller(
                session,
                run_as,
                client_address="scheduler",
                project_scope=scenario.project_id,
            )
            project_key = session.get_one(Project, scenario.project_id).key
            return PollTarget(project_key, actor, dict(scenario.trigger_state.get(str(index), {})))

    def record_trigger_state(self, row_id: int, index: int, state: dict[str, Any]) -> None:
        """Keep what a polling trigger last observed, without it counting as a save."""
        with self.db.write() as session:
            current = session.scalar(select(Scenario.trigger_state).where(Scenario.id == row_id))
            if current is not None:
                # Not a save: keep updated_at (people read it, and catch-up counts from it).
                session.execute(
                    update(Scenario)
                    .where(Scenario.id == row_id)
                    .values(trigger_state={**current, str(index): state}, updated_at=Scenario.updated_at)
                )

    def ended_run(self, run_id: int) -> EndedRun | None:
        """A finished run as ``after_scenario`` triggers see it; ``None`` if it never ran."""
        with self.db.read() as session:
            run = session.get(ScenarioRun, run_id)
            if run is None or run.state == RunState.SKIPPED:
                return None
            slug = session.get_one(Scenario, run.scenario_id).slug
            return EndedRun(run.project_id, slug, RunState(run.state))

    def run_token_id(self, key: str, run_id: int) -> int | None:
        """The id of the token run ``run_id`` of project ``key`` holds while it runs (its steps'
        pods call with it); ``None`` when there is no such run or it holds none."""
        with self.db.read() as session:
            return session.scalar(
                select(ScenarioRun.token_id)
                .join(Project, Project.id == ScenarioRun.project_id)
                .where(ScenarioRun.id == run_id, Project.key == key)
            )


def _fire_scenarios(session: Session, fires: Sequence[Fire]) -> tuple[dict[int, Scenario], list[Any]]:
    """The fired scenarios by row id, and their run-as users and projects, to be held for the
    transaction: the session keeps rows weakly, and each run and its audit entry would otherwise
    read its user and project again, a statement each per run."""
    scenarios = {s.id: s for s in session.scalars(select(Scenario).where(Scenario.id.in_({f.row_id for f in fires})))}
    held = [
        *session.scalars(select(User).where(User.id.in_({s.run_as_id for s in scenarios.values()}))),
        *session.scalars(select(Project).where(Project.id.in_({s.project_id for s in scenarios.values()}))),
    ]
    return scenarios, held


def _number_for_sqlite(session: Session, runs: Sequence[ScenarioRun | None]) -> None:
    """On SQLite, give new runs the ids SQLite would, so that one flush inserts them in one statement.

    The ORM inserts rows whose ids the database makes one INSERT each on SQLite (its RETURNING does
    not follow the rows' order), rows that have their ids together. The write transaction holds the
    database's lock (``BEGIN IMMEDIATE``), and a table without ``AUTOINCREMENT`` numbers a row
    ``max(id) + 1``: the ids are the ones SQLite would choose. PostgreSQL inserts many rows in one
    statement and returns their ids in order; its sequence numbers them there.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    new: list[ScenarioRun] = [run for run in runs if run is not None and inspect(run).pending]
    if not new:
        return
    with session.no_autoflush:
        first = (session.scalar(select(func.max(ScenarioRun.id))) or 0) + 1
    for offset, pending in enumerate(new):
        pending.id = first + offset


def _fire_entry(session: Session, scenario: Scenario, run: ScenarioRun, detail: dict[str, Any]) -> AuditRecord:
    """The audit entry of an automatic firing of ``run`` (flushed: its id is known) with ``detail``."""
    return AuditRecord(
        "scenario.fire",
        "scenario",
        scenario.slug,
        project_key=session.get_one(Project, scenario.project_id).key,
        details={"run": run.id, "trigger": run.trigger, "trigger_detail": detail, "state": run.state},
    )


def _close_steps(run: ScenarioRun, interrupted: str | None) -> None:
    """Settle the steps an ending run left: those not reached are skipped, one still running failed
    (with ``interrupted`` as its message, when given)."""
    for step in run.steps:
        if step.state == StepState.PENDING:
            step.state = StepState.SKIPPED
        elif step.state == StepState.RUNNING:
            step.state, step.ended_at = StepState.FAILED, run.ended_at
            if interrupted is not None:
                step.message = interrupted


def step_metrics(session: Session, run_id: int, position: int) -> dict[str, Any]:
    """The metrics the kernel of step ``position`` recorded during its last attempt, named
    ``dataset/metric`` when they belong to a dataset (neither name may hold a slash).

    Steps of a run execute one after another and a step's kernel is gone when the next starts,
    so what the run-as user recorded for the run through the API (origin ``run``) between the
    attempt's start and now is that kernel's; ``compute_metrics`` steps record theirs with
    origin ``scenario`` and show them in their own outputs.
    """
    step = session.get(RunStep, (run_id, position))
    if step is None:  # artifacts kept for a position the run has no step at: nothing is its kernel's
        return {}
    run = session.get_one(ScenarioRun, run_id, options=[joinedload(ScenarioRun.run_as)])
    query = (
        select(Dataset.name, MetricValue.metric, MetricValue.value)
        .outerjoin(Dataset, Dataset.id == MetricValue.dataset_id)
        .where(
            MetricValue.run_id == str(run_id),
            MetricValue.origin == "run",
            MetricValue.actor == run.run_as.login,
        )
        .order_by(MetricValue.id)
    )
    if step.started_at is not None:
        query = query.where(MetricValue.computed_at >= step.started_at)
    return {(f"{dataset}/{metric}" if dataset else metric): value for dataset, metric, value in session.execute(query)}


def summary_steps(run: ScenarioRun) -> list[StepSummary]:
    def seconds(start: datetime | None, end: datetime | None) -> float | None:
        return (end - start).total_seconds() if start and end else None

    return [StepSummary(s.name, s.type, s.state, s.message, seconds(s.started_at, s.ended_at)) for s in run.steps]


def summary_checks(run: ScenarioRun) -> list[CheckSummary]:
    return [
        CheckSummary(s.outputs.get("dataset", ""), r["check"], r["outcome"], r["message"])
        for s in run.steps
        for r in s.outputs.get("results", [])
    ]


def artifact_name(position: int, kind: str) -> str:
    """How the API names a step's artifact (and the file people download)."""
    return f"step-{position}.{kind}"


def latest_artifact(
    session: Session, run_id: int, kind: ArtifactKind, positions: list[int] | None = None
) -> RunArtifact | None:
    """The ``kind`` artifact of the last notebook step that produced one (among ``positions`` if given)."""
    query = select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.kind == kind)
    if positions is not None:
        query = query.where(RunArtifact.position.in_(positions))
    return session.scalar(query.order_by(RunArtifact.position.desc()).limit(1))
