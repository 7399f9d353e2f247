"""The run engine: takes queued runs within the limits and carries each one through its steps.

One engine lives in each control plane process that runs scenarios (``himalia serve``, the
standalone server extension, ``himalia scenario run``). Runs are claimed from the store, so
several engines on one PostgreSQL share the queue; each engine sends heartbeats for the runs it
holds and marks failed the runs of engines that stopped. A run acts as its run-as user, limited
to its project, and its kernels get a token of that user scoped to the project, deleted when the
run ends.
"""

import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import selectinload

from himalia.core.errors import HimaliaError
from himalia.core.permissions import GlobalPermission
from himalia.core.units import parse_duration
from himalia.core.unsafe import run_function
from himalia.data.access import one_statement
from himalia.data.drivers import driver_message, scrub, sql_engine
from himalia.execution.base import Executor, NotebookJob
from himalia.identity.caller import Caller, load_caller
from himalia.identity.tokens import TOKEN_PREFIX, digest
from himalia.core.variables import INSTANCE_VARIABLES, REFERENCE, expand, resolve
from himalia.scenarios.definitions import (
    ComputeMetricsStep,
    NotebookStep,
    RunChecksStep,
    RunScenarioStep,
    SetVariablesStep,
    SqlStep,
    Step,
    stored_definition,
)
from himalia.scenarios.redaction import Redactor, secret_values
from himalia.scenarios.reporting import CheckSummary, RunSummary, StepSummary, report_all
from himalia.scenarios.runs import artifact_name, latest_artifact, this_worker
from himalia.scenarios.snapshots import check_value
from himalia.store.orm import (
    ApiToken,
    Connection,
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
from himalia.wire.common import Variables
from himalia.wire.scenarios import FINISHED_STATES

if TYPE_CHECKING:
    from himalia.hosts.controlplane import ControlPlane

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=60)
LOG_FLUSH_SECONDS = 0.5


class StepFailed(Exception):
    """A step's own failure, with the sentence people read on the run."""


class RunAborted(Exception):
    pass


@dataclass
class StepOutcome:
    state: str
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


class RunLog:
    """Buffers a run's output and appends it to the store in chunks, so the log can be followed live.

    Chunks are stored with the run's credentials masked (``redactor``); a line still being written
    is held back until it ends, so that a token is never cut in two by a chunk boundary.
    """

    #: A line being written is held back at most this long before it is stored unfinished.
    PARTIAL_LINE_CHARS = 8192

    def __init__(self, plane: "ControlPlane", run_id: int) -> None:
        self.plane, self.run_id = plane, run_id
        self.redactor = Redactor()
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def line(self, message: str) -> None:
        self.write(f"{utcnow():%H:%M:%S} {message}\n")

    def write(self, text: str) -> None:
        with self._lock:
            self._buffer.append(text)
            due = time.monotonic() - self._last_flush > LOG_FLUSH_SECONDS
        if due:
            self.flush(complete=False)

    def flush(self, complete: bool = True) -> None:
        with self._lock:
            chunk, self._buffer = "".join(self._buffer), []
            cut = chunk.rfind("\n") + 1  # after the last complete line
            if not complete and cut < len(chunk) and len(chunk) - cut <= self.PARTIAL_LINE_CHARS:
                chunk, self._buffer = chunk[:cut], [chunk[cut:]]
            self._last_flush = time.monotonic()
        if chunk:
            with self.plane.db.write() as session:
                session.add(RunLogChunk(run_id=self.run_id, text=self.redactor.text(chunk)))


class RunContext:
    """What the steps of one run share: who it acts as, its variables, its log, its abort switch."""

    def __init__(self, engine: "RunEngine", run: ScenarioRun, project: Project, actor: Caller, unscoped: Caller):
        self.engine = engine
        self.run_id = run.id
        self.project_key = project.key
        self.scenario_slug = run.scenario.slug
        self.scenario_row = run.scenario_id
        self.definition = stored_definition(run.definition)
        self.notebooks = dict(run.notebooks)
        self.parameters = dict(run.parameters)
        self.run_variables: dict[str, Any] = dict(run.variables)
        self.actor = actor
        self.may_run_code = unscoped.has(GlobalPermission.WRITE_UNSAFE_CODE)
        #: Notebooks run isolated (own OS account, own pod) need write_isolated_code; run as the
        #: platform's own account (``shared_account_unsafe``), write_unsafe_code as well.
        self.notebooks_need = [GlobalPermission.WRITE_ISOLATED_CODE]
        if not engine.executor.isolates_code:
            self.notebooks_need.append(GlobalPermission.WRITE_UNSAFE_CODE)
        self.may_run_notebooks = all(unscoped.has(permission) for permission in self.notebooks_need)
        self.log = RunLog(engine.plane, run.id)
        self.aborted = threading.Event()
        self.current_handle: Any = None
        self.child_run: int | None = None
        self.token: str | None = None
        self.deadline: float | None = None
        self.base_variables: dict[str, Any] = {}

    def variables(self) -> dict[str, Any]:
        """Instance < project < scenario and run variables, expanded."""
        return resolve(self.base_variables, self.run_variables)

    def remaining(self, limit: float | None) -> float | None:
        if self.deadline is None:
            return limit
        left = max(self.deadline - time.monotonic(), 0.0)
        return left if limit is None else min(limit, left)


class RunEngine:
    def __init__(self, plane: "ControlPlane", executor: Executor, *, only: set[int] | None = None) -> None:
        self.plane = plane
        self.executor = executor
        self.worker = this_worker()
        #: Restrict the engine to these runs (``himalia scenario run`` runs its own run only).
        self.only = only
        self._active: dict[int, RunContext] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max(plane.max_concurrent_runs, 1) + 1, thread_name_prefix="himalia-run")
        self._threads: list[threading.Thread] = []
        self.on_finished: list[Callable[[int], object]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        recovered = self.plane.runs.recover(STALE_AFTER)
        if recovered:
            self.plane.log.warning("Marked failed the runs a stopped control plane held: %s", recovered)
        self.plane.runs.on_queued.append(self.wake)
        self.plane.runs.on_abort.append(self.abort_local)
        for target, name in ((self._dispatch_loop, "dispatch"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"himalia-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking runs; runs in progress are aborted and marked failed, as a restart would."""
        self._stopping.set()
        self.wake()
        with self._lock:
            contexts = list(self._active.values())
        for context in contexts:
            context.aborted.set()
            if context.current_handle is not None:
                context.current_handle.abort()
        self._pool.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=5)
        self.executor.close()

    def wake(self, _run_id: int | None = None) -> None:
        with self._wake:
            self._wake.notify_all()

    def abort_local(self, run_id: int) -> None:
        with self._lock:
            context = self._active.get(run_id)
        if context is None:
            return
        context.aborted.set()
        if context.current_handle is not None:
            context.current_handle.abort()
        if context.child_run is not None:
            self.abort_local(context.child_run)

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                while not self._stopping.is_set():
                    with self._lock:
                        running = len(self._active)
                    run_id = self.plane.runs.claim_next(self.worker, running, self.only)
                    if run_id is None:
                        break
                    self._begin(run_id)
            except Exception:
                self.plane.log.exception("The run dispatcher failed; retrying")
            with self._wake:
                self._wake.wait(timeout=1.0)

    def _heartbeat_loop(self) -> None:
        last_sweep = 0.0
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                for run_id in self.plane.runs.heartbeat(self.worker):
                    self.abort_local(run_id)
                if time.monotonic() - last_sweep > STALE_AFTER.total_seconds():
                    last_sweep = time.monotonic()
                    self.plane.runs.recover(STALE_AFTER)
            except Exception:
                self.plane.log.exception("Run heartbeat failed; retrying")

    def _begin(self, run_id: int) -> None:
        context = self._prepare(run_id)
        if context is None:
            return
        with self._lock:
            self._active[run_id] = context
        self._pool.submit(self._execute_and_release, context)

    def _execute_and_release(self, context: RunContext) -> None:
        try:
            self.execute(context)
        except Exception:
            self.plane.log.exception("Run #%d crashed", context.run_id)
            self._finish(context.run_id, "failed", "The run engine failed during this run; see the server log.")
        finally:
            with self._lock:
                self._active.pop(context.run_id, None)
            self.wake()

    def wait_for(self, run_id: int, poll: float = 0.2) -> str:
        while True:
            with self.plane.db.read() as session:
                state = session.get_one(ScenarioRun, run_id).state
            if state in FINISHED_STATES:
                return state
            time.sleep(poll)

    # -- one run ------------------------------------------------------------------------------

    def _prepare(self, run_id: int) -> RunContext | None:
        """Load a claimed run, mint its token; a run that cannot start is failed with the reason."""
        try:
            with self.plane.db.write() as session:
                run = session.get_one(
                    ScenarioRun, run_id, options=[selectinload(ScenarioRun.steps), selectinload(ScenarioRun.scenario)]
                )
                project = session.get_one(Project, run.project_id)
                user = session.get_one(User, run.run_as_id)
                unscoped = load_caller(session, user, client_address=f"run #{run_id}", run_id=run_id)
                actor = load_caller(
                    session, user, client_address=f"run #{run_id}", project_scope=project.id, run_id=run_id
                )
                context = RunContext(self, run, project, actor, unscoped)
                setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
                context.base_variables = {**(setting.value if setting else {}), **project.variables}
                timeout = context.definition.timeout
                lifetime = parse_duration(timeout) if timeout else timedelta(hours=24)
                context.token = TOKEN_PREFIX + secrets.token_urlsafe(32)
                # What the run's kernels are given, or could find in an inherited environment.
                context.log.redactor = Redactor([context.token, *secret_values(os.environ)])
                token = ApiToken(
                    user_id=user.id,
                    name=f"run #{run_id} of {run.scenario.slug}",
                    prefix=context.token[: len(TOKEN_PREFIX) + 4],
                    digest=digest(context.token),
                    project_id=project.id,
                    expires_at=utcnow() + lifetime + timedelta(minutes=10),
                )
                session.add(token)
                session.flush()
                run.token_id = token.id
                self.plane.tiers.open_run_usage(session, user, context.definition.tier, run_id)
                if timeout:
                    context.deadline = time.monotonic() + parse_duration(timeout).total_seconds()
                return context
        except HimaliaError as error:
            self._finish(run_id, "failed", f"The run could not start: {error.message}")
            return None

    def execute(self, context: RunContext) -> None:
        log = context.log
        definition = context.definition
        log.line(f"Run #{context.run_id} of '{definition.name}' as {context.actor.login}")
        with self.plane.db.read() as session:
            run = session.get_one(ScenarioRun, context.run_id, options=[selectinload(ScenarioRun.steps)])
            start_step, rerun_of = run.start_step, run.rerun_of
        failed = warned = aborted = timed_out = False
        for position, step in enumerate(definition.steps):
            if position < start_step:
                self._set_step(context.run_id, position, "skipped", f"kept from run #{rerun_of}")
                continue
            if context.aborted.is_set():
                aborted = True
            elif context.remaining(None) == 0.0:
                timed_out = True
            if aborted or timed_out:
                self._set_step(context.run_id, position, "skipped", "not run: the run was stopped")
                continue
            if not _should_run(step, failed):
                reason = "an earlier step failed" if failed else "no earlier step failed"
                self._set_step(context.run_id, position, "skipped", f"not run: {reason}")
                continue
            outcome = self._run_step(context, position, step)
            if outcome.state == "aborted":
                aborted = True
            elif outcome.state == "failed" and step.ignore_failure:
                warned = True
            elif outcome.state == "failed":
                failed = True
            elif outcome.state == "warning":
                warned = True
        if aborted or context.aborted.is_set():
            state, message = "aborted", "Aborted."
        elif timed_out:
            state, message = "failed", f"The scenario ran longer than its {definition.timeout} limit."
        elif failed:
            state, message = "failed", ""
        else:
            state, message = ("warning" if warned else "succeeded"), ""
        log.line(f"Run #{context.run_id} ended: {state}")
        log.flush()
        self._finish(context.run_id, state, message, context.run_variables)
        self._report(context.run_id)
        for listener in self.on_finished:
            listener(context.run_id)

    def _run_step(self, context: RunContext, position: int, step: Step) -> StepOutcome:
        attempts = 1 + (step.retries if isinstance(step, NotebookStep) else 0)
        outcome = StepOutcome("failed")
        for attempt in range(1, attempts + 1):
            self._set_step(context.run_id, position, "running", "", attempts=attempt, start=True)
            context.log.line(f"[{step.name}] {step.type} step" + (f", attempt {attempt}" if attempt > 1 else ""))
            try:
                outcome = self._dispatch_step(context, position, step)
            except RunAborted:
                outcome = StepOutcome("aborted", "aborted")
            except (StepFailed, HimaliaError) as error:
                outcome = StepOutcome("failed", error.message if isinstance(error, HimaliaError) else str(error))
            except Exception as error:  # a bug of ours must fail the step, not leave the run "running"
                self.plane.log.exception("Step %s of run #%d crashed", step.name, context.run_id)
                outcome = StepOutcome("failed", f"internal error: {type(error).__name__}")
            if outcome.state != "failed" or context.aborted.is_set():
                break
            if attempt < attempts:
                context.log.line(f"[{step.name}] failed ({outcome.message}); retrying")
        if outcome.state == "failed" and step.ignore_failure:
            outcome.message = f"{outcome.message} (failure ignored)"
        context.log.line(f"[{step.name}] {outcome.state}" + (f": {outcome.message}" if outcome.message else ""))
        self._set_step(context.run_id, position, outcome.state, outcome.message, outputs=outcome.outputs, end=True)
        return outcome

    def _dispatch_step(self, context: RunContext, position: int, step: Step) -> StepOutcome:
        if isinstance(step, NotebookStep):
            return self._notebook(context, position, step)
        if isinstance(step, ComputeMetricsStep):
            computed = self.plane.metrics.compute(
                context.actor,
                context.project_key,
                step.dataset,
                step.probes,
                origin="scenario",
                run_id=str(context.run_id),
            )
            values = dict(computed.values)
            return StepOutcome("succeeded", f"{len(values)} metrics of {step.dataset}", {"values": values})
        if isinstance(step, RunChecksStep):
            return self._checks(context, step)
        if isinstance(step, SetVariablesStep):
            return self._set_variables(context, step)
        if isinstance(step, SqlStep):
            return self._sql(context, step)
        return self._run_scenario(context, step)

    # -- steps --------------------------------------------------------------------------------

    def _notebook(self, context: RunContext, position: int, step: NotebookStep) -> StepOutcome:
        if not context.may_run_notebooks:
            needed = " and ".join(f"'{permission}'" for permission in context.notebooks_need)
            raise StepFailed(f"{context.actor.login} does not have {needed}, needed to run notebooks here")
        with self.plane.db.read() as session:
            snapshot = session.get_one(NotebookSnapshot, context.notebooks[step.notebook])
            content, declared = snapshot.content, {p["name"]: p for p in snapshot.parameters}
        parameters = typed_expand(step.parameters, context.variables())
        parameters.update({k: v for k, v in context.parameters.items() if k in declared})
        for name, value in parameters.items():
            if name not in declared:
                continue
            try:
                check_value(declared[name], value, f"parameters.{name}")
            except HimaliaError as error:
                raise StepFailed(error.message) from None
        env = {
            "HIMALIA_API_URL": self.plane.api_url or "",
            "HIMALIA_TOKEN": context.token or "",
            "HIMALIA_PROJECT": context.project_key,
            "HIMALIA_RUN_ID": str(context.run_id),
            "HIMALIA_SCENARIO": context.scenario_slug,
            "HIMALIA_TIER": context.definition.tier or "",
        }
        limit = parse_duration(step.timeout).total_seconds() if step.timeout else None
        timeout = context.remaining(limit)
        job = NotebookJob(
            run_id=context.run_id,
            step=step.name,
            notebook=step.notebook,
            content=content,
            parameters=parameters,
            env=env,
            kernel=step.kernel,
            timeout=timeout,
            hide_code=step.hide_code,
            tier=context.definition.tier,
            run_as=context.actor.login,
        )
        context.log.line(f"[{step.name}] papermill {step.notebook} ({snapshot.digest[:12]}) with {parameters}")
        handle = self.executor.start(job, context.log.write)
        context.current_handle = handle
        if context.aborted.is_set():
            handle.abort()
        try:
            result = handle.wait()
        finally:
            context.current_handle = None
        with self.plane.db.write() as session:
            for kind, produced, media_type in (
                ("ipynb", result.executed, "application/x-ipynb+json"),
                ("html", result.html, "text/html"),
            ):
                if produced is not None:
                    content_bytes = context.log.redactor.data(produced)  # what readers of the run may open
                    session.merge(
                        RunArtifact(
                            run_id=context.run_id,
                            name=artifact_name(position, kind),
                            media_type=media_type,
                            content=content_bytes,
                        )
                    )
            recorded = session.execute(
                select(MetricValue.metric, MetricValue.value).where(MetricValue.run_id == str(context.run_id))
            ).all()
        outputs = {
            "notebook": step.notebook,
            "snapshot": snapshot.digest,
            "parameters": parameters,
            "metrics": {metric: value for metric, value in recorded},
        }
        if result.reason == "aborted" or context.aborted.is_set():
            raise RunAborted()
        if not result.ok:
            message = context.log.redactor.text(result.error or result.reason)
            if result.reason == "timeout":  # say whose limit it was, as written
                if limit is not None and timeout == limit:
                    message = f"the step ran longer than its {step.timeout} limit"
                else:
                    message = f"the scenario ran longer than its {context.definition.timeout} limit"
            return StepOutcome("failed", message, outputs)
        return StepOutcome("succeeded", "", outputs)

    def _checks(self, context: RunContext, step: RunChecksStep) -> StepOutcome:
        checked = self.plane.checks.run_checks(
            context.actor, context.project_key, step.dataset, origin="scenario", run_id=str(context.run_id)
        )
        results = [r for r in checked.results if step.checks is None or r.check in step.checks]
        missing = sorted(set(step.checks or []) - {r.check for r in results})
        if missing:
            raise StepFailed(f"{step.dataset} has no check named {', '.join(missing)}")
        outputs = {
            "dataset": step.dataset,
            "results": [{"check": r.check, "outcome": r.outcome, "message": r.message} for r in results],
        }
        errors = [f"{r.check}: {r.message}" for r in results if r.outcome == "ERROR"]
        warnings = [f"{r.check}: {r.message}" for r in results if r.outcome == "WARNING"]
        if errors:
            return StepOutcome("failed", "; ".join(errors), outputs)
        if warnings:
            return StepOutcome("warning", "; ".join(warnings), outputs)
        return StepOutcome("succeeded", f"{len(results)} checks of {step.dataset} OK", outputs)

    def _set_variables(self, context: RunContext, step: SetVariablesStep) -> StepOutcome:
        current = context.variables()
        if step.code is not None:
            if not context.may_run_code:
                raise StepFailed(f"{context.actor.login} no longer has 'write_unsafe_code', needed to run code")
            answer = run_function(step.code, "variables", [current], timeout=context.remaining(60.0) or 60.0)
            if answer.error is not None:
                raise StepFailed(answer.error)
            if not isinstance(answer.result, dict) or not all(isinstance(k, str) for k in answer.result):
                raise StepFailed("variables(current) must return a dict of names to values")
            values = answer.result
        else:
            values = expand(step.values or {}, current)
        if step.scope == "project":
            existing = self.plane.variables.get_project(context.actor, context.project_key).variables
            self.plane.variables.set_project(
                context.actor, context.project_key, Variables(variables={**existing, **values})
            )
        context.run_variables.update(values)
        with self.plane.db.write() as session:
            session.get_one(ScenarioRun, context.run_id).variables = dict(context.run_variables)
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return StepOutcome("succeeded", f"{step.scope} variables: {shown}"[:500], {"variables": values})

    def _sql(self, context: RunContext, step: SqlStep) -> StepOutcome:
        with self.plane.db.read() as session:
            connection = session.scalar(
                select(Connection)
                .options(selectinload(Connection.group_access))
                .where(Connection.name == step.connection)
            )
            if connection is None:
                raise StepFailed(f"there is no connection '{step.connection}' any more")
            usable = self.plane.connections.usable(session, context.actor, connection)
        if usable.type != "sql":
            raise StepFailed(f"'{step.connection}' is not a sql connection")
        variables = context.variables()
        bound: dict[str, Any] = {k: expand(v, variables) for k, v in step.parameters.items()}

        def bind(match: re.Match[str]) -> str:
            if match.group(1):  # $${name}: a literal ${name}
                return "${" + match.group(2) + "}"
            if match.group(2) not in variables:
                raise StepFailed(f"statement: there is no variable '{match.group(2)}'")
            name = "v_" + re.sub(r"\W", "_", match.group(2))
            bound[name] = variables[match.group(2)]
            return ":" + name

        statement = REFERENCE.sub(bind, step.statement)
        backend = make_url(usable.params["url"]).get_backend_name()
        statement = one_statement(statement, backend, field="statement", query=False)
        engine = sql_engine(usable, writable=True)  # read-only in the database unless the connection allows writes
        try:
            with engine.connect() as connection_, connection_.begin():
                result = connection_.execute(text(statement), bound)
                rows = [list(r) for r in result.fetchmany(20)] if result.returns_rows else []
                affected = result.rowcount if not result.returns_rows else len(rows)
        except Exception as error:
            raise StepFailed(scrub(driver_message(error, usable.secrets), usable.secrets)) from None
        finally:
            engine.dispose()
        note = "" if usable.allow_write else " (read-only connection)"
        outputs = {"rows": [[str(v) for v in row] for row in rows], "affected": affected}
        return StepOutcome("succeeded", f"{affected} rows{note}", outputs)

    def _run_scenario(self, context: RunContext, step: RunScenarioStep) -> StepOutcome:
        with self.plane.db.write() as session:
            target = session.scalar(
                select(Scenario).where(
                    Scenario.project_id == session.get_one(ScenarioRun, context.run_id).project_id,
                    Scenario.slug == step.scenario,
                )
            )
            if target is None:
                raise StepFailed(f"there is no scenario '{step.scenario}' any more")
            child = self.plane.runs.enqueue(
                session,
                target,
                trigger="scenario",
                detail={"run": context.run_id, "scenario": context.scenario_slug},
                requested_by=context.actor.login,
                state="running" if step.wait else "queued",
                fired_by=context.actor,
            )
            assert child is not None
            child_id, child_state = child.id, child.state
            if child_state == "running":
                child.worker, child.started_at, child.heartbeat_at = self.worker, utcnow(), utcnow()
        if child_state == "skipped" or not step.wait:
            if not step.wait:
                self.wake()
            return StepOutcome(
                "warning" if child_state == "skipped" else "succeeded",
                f"run #{child_id} of {step.scenario}: {child_state}",
                {"run": child_id},
            )
        child_context = self._prepare(child_id)
        if child_context is None:
            return StepOutcome("failed", f"run #{child_id} of {step.scenario} could not start", {"run": child_id})
        with self._lock:
            self._active[child_id] = child_context
        context.child_run = child_id
        try:
            self.execute(child_context)
        finally:
            context.child_run = None
            with self._lock:
                self._active.pop(child_id, None)
        with self.plane.db.read() as session:
            state = session.get_one(ScenarioRun, child_id).state
        mapped = {"succeeded": "succeeded", "warning": "warning", "aborted": "aborted"}.get(state, "failed")
        if mapped == "aborted" and not context.aborted.is_set():
            mapped = "failed"
        return StepOutcome(mapped, f"run #{child_id} of {step.scenario}: {state}", {"run": child_id})

    # -- bookkeeping --------------------------------------------------------------------------

    def _set_step(
        self,
        run_id: int,
        position: int,
        state: str,
        message: str,
        *,
        attempts: int | None = None,
        outputs: dict[str, Any] | None = None,
        start: bool = False,
        end: bool = False,
    ) -> None:
        with self.plane.db.write() as session:
            step = session.get_one(RunStep, (run_id, position))
            step.state, step.message = state, message[:10_000]
            if attempts is not None:
                step.attempts = attempts
            if outputs is not None:
                step.outputs = outputs
            if start:
                step.started_at, step.ended_at = utcnow(), None
            if end:
                step.ended_at = utcnow()

    def _finish(self, run_id: int, state: str, message: str, variables: dict[str, Any] | None = None) -> None:
        with self.plane.db.write() as session:
            run = session.get_one(ScenarioRun, run_id, options=[selectinload(ScenarioRun.steps)])
            run.state, run.ended_at = state, utcnow()
            if message:
                run.message = message
            if variables is not None:
                run.variables = variables
            for step in run.steps:
                if step.state in ("pending", "running"):
                    step.state = "skipped" if step.state == "pending" else "failed"
            if run.token_id is not None:
                session.execute(delete(ApiToken).where(ApiToken.id == run.token_id))
            self.plane.tiers.close_run_usage(session, run_id)

    def _report(self, run_id: int) -> None:
        """Send the run's reporters; their failures are recorded, never change the outcome."""
        with self.plane.db.read() as session:
            run = session.get_one(ScenarioRun, run_id, options=[selectinload(ScenarioRun.steps)])
            reporters = stored_definition(run.definition).reporters
        if not reporters:
            return
        summary = self.summarize(run_id)
        deliveries = report_all(
            reporters, summary, self.plane.mailer, self.plane.webhook_signing_key, webhooks=self.plane.webhooks
        )
        with self.plane.db.write() as session:
            session.get_one(ScenarioRun, run_id).deliveries = [
                {
                    "reporter": d.reporter,
                    "sent": d.sent,
                    "attempts": d.attempts,
                    "error": d.error,
                    "skipped_reason": d.skipped_reason,
                }
                for d in deliveries
            ]
        for delivery in deliveries:
            if delivery.error:
                self.plane.log.warning("Run #%d: %s failed: %s", run_id, delivery.reporter, delivery.error)

    def summarize(self, run_id: int) -> RunSummary:
        """What reporters say about a finished run."""
        with self.plane.db.read() as session:
            run = session.get_one(
                ScenarioRun, run_id, options=[selectinload(ScenarioRun.steps), selectinload(ScenarioRun.scenario)]
            )
            project = session.get_one(Project, run.project_id)
            previous = session.scalar(
                select(ScenarioRun.state)
                .where(
                    ScenarioRun.scenario_id == run.scenario_id,
                    ScenarioRun.id < run.id,
                    ScenarioRun.state.in_(("succeeded", "warning", "failed", "aborted")),
                )
                .order_by(ScenarioRun.id.desc())
                .limit(1)
            )
            report = latest_artifact(session, run_id, "html")
            log = "".join(
                session.scalars(select(RunLogChunk.text).where(RunLogChunk.run_id == run_id).order_by(RunLogChunk.id))
            )
            user = session.get_one(User, run.run_as_id)
            actor = load_caller(session, user, client_address=f"run #{run_id}", project_scope=project.id, run_id=run_id)
            definition = stored_definition(run.definition)
            detail = run.trigger_detail
            trigger = " ".join(str(v) for v in (run.trigger, detail.get("user") or detail.get("fire_time") or "") if v)
            return RunSummary(
                project=project.key,
                scenario_id=run.scenario.slug,
                scenario_name=definition.name,
                run_id=run.id,
                outcome=run.state,
                previous_outcome=previous,
                trigger=trigger,
                started_at=run.started_at,
                ended_at=run.ended_at,
                steps=summary_steps(run),
                checks=summary_checks(run),
                variables=dict(run.variables),
                message=run.message,
                url=f"{self.plane.api_url}/projects/{project.key}/scenarios/{run.scenario.slug}/runs/{run.id}"
                if self.plane.api_url
                else None,
                report_html=report.content if report else None,
                log=log,
                dataset_csv=lambda name, max_bytes: self.plane.datasets.read_csv(actor, project.key, name, max_bytes),
            )


def typed_expand(values: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """Expand ``${name}`` references; a value that is exactly one reference keeps the variable's type,
    so ``threshold: "${threshold}"`` passes a float to a float parameter."""
    typed = {}
    for name, value in values.items():
        match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if match and not match.group(1) and match.group(2) in variables:
            typed[name] = variables[match.group(2)]
        else:
            typed[name] = expand(value, variables)
    return typed


def _should_run(step: Step, failed_before: bool) -> bool:
    if step.run_if == "always":
        return True
    if step.run_if == "prior_failure":
        return failed_before
    return not failed_before


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
