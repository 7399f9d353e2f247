"""Runs of scenarios: requesting, reading, aborting and re-running them, and their state in the store.

A run freezes the scenario's definition and notebook snapshots when it is created, so a re-run
runs exactly the same thing. Who may do what: reading runs follows reading scenarios; running,
aborting and re-running need ``run_scenarios``. Automatic firings carry a ``fire_key`` that is
unique in the database, which is what makes a fire time produce at most one run even with two
control planes on one PostgreSQL.
"""

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from himalia.compute.tiers import admit_tier, end_run_usage
from himalia.core.errors import Conflict, HimaliaError, InvalidInput, NotFound, TooBusy
from himalia.core.permissions import ProjectPermission
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import Service
from himalia.scenarios.definitions import NotebookStep
from himalia.scenarios.service import definition_of, find_scenario, may_read_scenarios
from himalia.scenarios.snapshots import check_value
from himalia.store.db import paginate
from himalia.store.orm import (
    ApiToken,
    NotebookSnapshot,
    Project,
    RunArtifact,
    RunLogChunk,
    RunStep,
    Scenario,
    ScenarioRun,
    utcnow,
)
from himalia.wire.common import Page
from himalia.wire.scenarios import ACTIVE_STATES, DescribeRun, DescribeStep, RerunRequest, RunRequest

P = ProjectPermission


_INCARNATION = secrets.token_hex(4)


def this_worker() -> str:
    """How this process names itself on the runs it holds: ``host:pid:incarnation``.

    The incarnation tells a restarted process from its predecessor when both got the same pid
    (pid 1 in a container).
    """
    return f"{socket.gethostname()}:{os.getpid()}:{_INCARNATION}"


def _worker_gone(worker: str | None) -> bool:
    """Whether the process that held a run is certainly gone: same host, and dead or reborn."""
    host, pid, incarnation = [*(worker or "").split(":"), "", "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return incarnation != _INCARNATION
    return not _alive(int(pid))


@dataclass(frozen=True)
class RunLimits:
    max_running: int
    max_running_per_user: int
    max_queued: int


def describe_run(run: ScenarioRun, project_key: str, artifacts: list[str]) -> DescribeRun:
    return DescribeRun(
        id=run.id,
        project=project_key,
        scenario=run.scenario.slug,
        state=run.state,
        trigger=run.trigger,
        trigger_detail=dict(run.trigger_detail),
        requested_by=run.requested_by,
        run_as=run.run_as.login,
        parameters=dict(run.parameters),
        variables=dict(run.variables),
        notebooks=dict(run.notebooks),
        message=run.message,
        rerun_of=run.rerun_of,
        start_step=run.start_step,
        abort_requested=run.abort_requested,
        deliveries=list(run.deliveries),
        artifacts=artifacts,
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        steps=[
            DescribeStep(
                position=s.position,
                name=s.name,
                type=s.type,
                state=s.state,
                message=s.message,
                attempts=s.attempts,
                outputs=dict(s.outputs),
                started_at=s.started_at,
                ended_at=s.ended_at,
            )
            for s in run.steps
        ],
    )


def _artifact_names(session: Session, run_id: int) -> list[str]:
    return list(
        session.scalars(select(RunArtifact.name).where(RunArtifact.run_id == run_id).order_by(RunArtifact.name))
    )


class RunService(Service):
    def __init__(self, db: Any, audit: Any, log: Any, limits: Callable[[], RunLimits]) -> None:
        super().__init__(db, audit, log)
        self.limits = limits
        #: Called after a run is queued (the engine wakes up) and when an abort is requested.
        self.on_queued: list[Callable[[int], None]] = []
        self.on_abort: list[Callable[[int], None]] = []

    # -- requesting ---------------------------------------------------------------------------

    def request_run(self, caller: Caller, key: str, scenario_id: str, spec: RunRequest) -> DescribeRun:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, P.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            admit_tier(session, scenario.run_as, definition_of(scenario).tier)
            parameters = self._checked_parameters(session, scenario, spec.parameters)
            run = self.enqueue(
                session,
                scenario,
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
            project, _ = require_project(session, caller, key, P.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            earlier = self._find_run(session, scenario, run_id)
            admit_tier(session, earlier.run_as, definition_of(earlier).tier)
            if earlier.state in ACTIVE_STATES:
                raise Conflict(f"Run #{run_id} is not finished yet.")
            start = 0
            if spec.from_failed_step:
                failed = [s.position for s in earlier.steps if s.state in ("failed", "aborted")]
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
        if run.state == "queued":
            for listener in self.on_queued:
                listener(run.id)

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
        frozen: ScenarioRun | None = None,
        start_step: int = 0,
        state: str = "queued",
        fired_by: Caller | None = None,
    ) -> ScenarioRun | None:
        """Create a run following the scenario's concurrency policy; ``None`` if ``fire_key`` already fired.

        A manual request refused by the policy or a full queue is an error; an automatic firing
        is recorded as a skipped run so that people see it happened, and audited as ``fired_by``
        (the scheduler's system actor, or the run that started this one).
        """
        definition = definition_of(frozen or scenario)
        skip_reason: str | None = None
        refusal: type[HimaliaError] = Conflict
        in_progress = session.scalar(
            select(ScenarioRun.id)
            .where(ScenarioRun.scenario_id == scenario.id, ScenarioRun.state.in_(ACTIVE_STATES))
            .order_by(ScenarioRun.id)
        )
        if in_progress is not None and definition.concurrency == "skip":
            skip_reason = f"run #{in_progress} was still in progress (concurrency policy 'skip')"
        queued = session.scalar(select(func.count()).where(ScenarioRun.state == "queued")) or 0
        limit = self.limits().max_queued
        if skip_reason is None and state == "queued" and queued >= limit:
            skip_reason, refusal = f"the run queue is full ({queued} runs waiting, the limit is {limit})", TooBusy
        if skip_reason is not None and manual:
            raise refusal(f"'{scenario.slug}' was not started: {skip_reason}.")
        now = utcnow()
        run = ScenarioRun(
            scenario=scenario,
            project_id=scenario.project_id,
            state="skipped" if skip_reason else state,
            trigger=trigger,
            trigger_detail=detail,
            fire_key=fire_key,
            requested_by=requested_by,
            run_as_id=frozen.run_as_id if frozen else scenario.run_as_id,
            definition=dict(frozen.definition if frozen else scenario.definition),
            notebooks=dict(frozen.notebooks if frozen else scenario.notebooks),
            parameters=parameters or {},
            variables={**definition.variables, **(variables or {})},
            start_step=start_step,
            rerun_of=frozen.id if frozen else None,
            message=f"Skipped: {skip_reason}." if skip_reason else "",
            created_at=now,
            ended_at=now if skip_reason else None,
        )
        run.steps = [
            RunStep(position=i, name=step.name, type=step.type, state="skipped" if skip_reason else "pending")
            for i, step in enumerate(definition.steps)
        ]
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
        except IntegrityError:
            if fire_key is None:
                raise
            return None
        if fired_by is not None:
            self.audit.record(
                session,
                fired_by,
                "scenario.fire",
                "scenario",
                scenario.slug,
                project_key=session.get_one(Project, scenario.project_id).key,
                details={"run": run.id, "trigger": trigger, "trigger_detail": detail, "state": run.state},
            )
        return run

    def _checked_parameters(self, session: Session, scenario: Scenario, given: dict[str, Any]) -> dict[str, Any]:
        """Refuse names no notebook step declares and values of the wrong type, before anything runs."""
        declared: dict[str, list[dict[str, Any]]] = {}
        for step in definition_of(scenario).steps:
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

    def get_run(self, caller: Caller, key: str, scenario_id: str, run_id: int) -> DescribeRun:
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            run = self._find_run(session, scenario, run_id)
            return describe_run(run, key, _artifact_names(session, run.id))

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
        self, caller: Caller, key: str, scenario_id: str, run_id: int, kind: str, step: str | None
    ) -> tuple[str, str, bytes]:
        """A notebook step's executed notebook (``ipynb``) or HTML report (``html``): the named step's,
        else the last one produced."""
        with self.db.read() as session:
            scenario = self._scenario_for_read(session, caller, key, scenario_id)
            run = self._find_run(session, scenario, run_id)
            positions = [s.position for s in run.steps if s.name == step] if step is not None else None
            artifact = latest_artifact(session, run.id, kind, positions)
            if artifact is None:
                what = "HTML report" if kind == "html" else "executed notebook"
                raise NotFound(f"Run #{run_id} has no {what}" + (f" for step '{step}'." if step else "."))
            return artifact.name, artifact.media_type, artifact.content

    # -- aborting -----------------------------------------------------------------------------

    def abort(self, caller: Caller, key: str, scenario_id: str, run_id: int) -> DescribeRun:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, P.RUN_SCENARIOS)
            scenario = find_scenario(session, project, scenario_id)
            run = self._find_run(session, scenario, run_id)
            if run.state not in ACTIVE_STATES:
                raise Conflict(f"Run #{run_id} already ended ({run.state}).")
            run.abort_requested = True
            if run.state == "queued":
                run.state, run.ended_at = "aborted", utcnow()
                run.message = f"Aborted by {caller.login} before it started."
                for step in run.steps:
                    step.state = "skipped"
            self.audit.record(
                session, caller, "scenario.abort", "scenario", scenario_id, project_key=key, details={"run": run_id}
            )
            described = describe_run(run, key, _artifact_names(session, run.id))
        for listener in self.on_abort:
            listener(run_id)
        return described

    # -- the engine's side --------------------------------------------------------------------

    def claim_next(self, worker: str, running_here: int, only: set[int] | None = None) -> int | None:
        """Take the oldest queued run that the limits allow, for ``worker``; ``None`` if there is none."""
        limits = self.limits()
        if running_here >= limits.max_running:
            return None
        with self.db.write() as session:
            query = select(ScenarioRun).where(ScenarioRun.state == "queued").order_by(ScenarioRun.id).limit(200)
            if only is not None:
                query = query.where(ScenarioRun.id.in_(only))
            candidates = session.scalars(query).all()
            if not candidates:
                return None
            running = session.execute(
                select(ScenarioRun.run_as_id, ScenarioRun.scenario_id).where(ScenarioRun.state == "running")
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
                    .where(ScenarioRun.id == run.id, ScenarioRun.state == "queued")
                    .values(state="running", worker=worker, started_at=utcnow(), heartbeat_at=utcnow())
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return run.id
        return None

    def heartbeat(self, worker: str) -> list[int]:
        """Say this worker's runs are alive; return those whose abort was requested (by any process)."""
        with self.db.write() as session:
            session.execute(
                update(ScenarioRun)
                .where(ScenarioRun.worker == worker, ScenarioRun.state == "running")
                .values(heartbeat_at=utcnow())
            )
            return list(
                session.scalars(
                    select(ScenarioRun.id).where(
                        ScenarioRun.worker == worker, ScenarioRun.state == "running", ScenarioRun.abort_requested
                    )
                )
            )

    def recover(self, stale_after: timedelta) -> list[int]:
        """Mark failed the runs whose control plane stopped: its process is gone from this host, or it
        has not sent a heartbeat for ``stale_after``."""
        now = utcnow()
        with self.db.write() as session:
            running = session.scalars(
                select(ScenarioRun).options(selectinload(ScenarioRun.steps)).where(ScenarioRun.state == "running")
            ).all()
            recovered = []
            for run in running:
                gone = _worker_gone(run.worker)
                stale = run.heartbeat_at is None or now - run.heartbeat_at > stale_after
                if not (gone or stale):
                    continue
                seen = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
                run.state, run.ended_at = "failed", now
                run.message = (
                    f"The control plane running this run ({run.worker}) stopped; last heard of at {seen}. "
                    "Marked failed when that was noticed."
                )
                for step in run.steps:
                    if step.state == "running":
                        step.state, step.ended_at, step.message = (
                            "failed",
                            now,
                            "interrupted: the control plane stopped",
                        )
                    elif step.state == "pending":
                        step.state = "skipped"
                if run.token_id is not None:
                    session.execute(delete(ApiToken).where(ApiToken.id == run.token_id))
                recovered.append(run.id)
                self.audit.record(
                    session,
                    Caller.system("recovery"),
                    "scenario.recover",
                    "scenario",
                    session.get_one(Scenario, run.scenario_id).slug,
                    project_key=session.get_one(Project, run.project_id).key,
                    details={"run": run.id, "worker": run.worker, "last_heartbeat": seen, "state": "failed"},
                )
            end_run_usage(session, recovered)
            return recovered


def artifact_name(position: int, kind: str) -> str:
    return f"step-{position}.{kind}"


def latest_artifact(session: Session, run_id: int, kind: str, positions: list[int] | None = None) -> RunArtifact | None:
    """The ``kind`` artifact of the last notebook step that produced one (among ``positions`` if given)."""
    names = [n for n in _artifact_names(session, run_id) if n.endswith("." + kind)]
    produced = {int(n.removeprefix("step-").removesuffix("." + kind)): n for n in names}
    wanted = [p for p in produced if positions is None or p in positions]
    return session.get(RunArtifact, (run_id, produced[max(wanted)])) if wanted else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
