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
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from logging import Logger, LoggerAdapter
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import selectinload

from himalia.core.errors import HimaliaError
from himalia.core.permissions import GlobalPermission
from himalia.core.units import parse_duration
from himalia.core.unsafe import run_function
from himalia.core.variables import REFERENCE, expand, resolve
from himalia.data.access import one_statement
from himalia.data.checks import CheckService
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.drivers import driver_message, scrub, sql_engine
from himalia.data.metrics import MetricService
from himalia.execution.base import Executor
from himalia.identity.variables import VariableService
from himalia.scenarios.definitions import (
    ComputeMetricsStep,
    EmailReporter,
    NotebookStep,
    RunChecksStep,
    RunScenarioStep,
    SetVariablesStep,
    SqlStep,
    Step,
    WebhookReporter,
)
from himalia.scenarios.redaction import Redactor, secret_values
from himalia.scenarios.reporting import Delivery, RunSummary
from himalia.scenarios.runs import Artifact, RunService, Snapshot, StartedRun, this_worker
from himalia.scenarios.snapshots import check_value
from himalia.store.events import AbortRequested, Events, RunQueued
from himalia.store.orm import Connection, utcnow
from himalia.wire.common import Variables
from himalia.wire.scenarios import FINISHED_STATES, ArtifactKind, RunState, StepState
from himalia.wire.steps import StepJob, deadline_after

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=60)
LOG_FLUSH_SECONDS = 0.5

Reporters = Sequence[EmailReporter | WebhookReporter]


class StepFailed(Exception):
    """A step's own failure, with the sentence people read on the run."""


class RunAborted(Exception):
    pass


@dataclass
class StepOutcome:
    state: StepState
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    #: The run's variables after the step, when the step changed them.
    variables: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepServices:
    """The domain services steps act through, always as the run's actor."""

    metrics: MetricService
    checks: CheckService
    variables: VariableService
    connections: ConnectionService
    datasets: DatasetService


class RunLog:
    """Buffers a run's output and appends it to the store in chunks, so the log can be followed live.

    Chunks are stored with the run's credentials masked (``redactor``); a line still being written
    is held back until it ends, so that a token is never cut in two by a chunk boundary.
    """

    #: A line being written is held back at most this long before it is stored unfinished.
    PARTIAL_LINE_CHARS = 8192

    def __init__(self, append: Callable[[int, str], None], run_id: int, redactor: Redactor) -> None:
        self.append, self.run_id = append, run_id
        self.redactor = redactor
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
            self.append(self.run_id, self.redactor.text(chunk))


class RunContext:
    """What the steps of one run share: who it acts as, its variables, its log, its abort switch."""

    def __init__(self, engine: "RunEngine", run: StartedRun) -> None:
        self.run = run
        self.run_id = run.run_id
        self.project_key = run.project_key
        self.scenario_slug = run.scenario_slug
        self.definition = run.definition
        self.notebooks = run.notebooks
        self.parameters = run.parameters
        self.run_variables: dict[str, Any] = dict(run.variables)
        self.base_variables = run.base_variables
        self.actor = run.actor
        self.token = run.token
        unscoped = replace(run.actor, project_scope=None)
        self.may_run_code = unscoped.has(GlobalPermission.WRITE_UNSAFE_CODE)
        #: Notebooks run isolated (own OS account, own pod) need write_isolated_code; run as the
        #: platform's own account (``shared_account_unsafe``), write_unsafe_code as well.
        self.notebooks_need = [GlobalPermission.WRITE_ISOLATED_CODE]
        if not engine.executor.isolates_code:
            self.notebooks_need.append(GlobalPermission.WRITE_UNSAFE_CODE)
        self.may_run_notebooks = all(unscoped.has(permission) for permission in self.notebooks_need)
        # What the run's kernels are given, or could find in an inherited environment.
        self.log = RunLog(engine.runs.append_log, run.run_id, Redactor([run.token, *secret_values(os.environ)]))
        self.aborted = threading.Event()
        self.current_handle: Any = None
        self.child_run: int | None = None
        self._read_snapshot = engine.runs.snapshot
        self._snapshots: dict[str, Snapshot] = {}
        timeout = run.definition.timeout
        self.deadline = time.monotonic() + parse_duration(timeout).total_seconds() if timeout else None

    def variables(self) -> dict[str, Any]:
        """Instance < project < scenario and run variables, expanded."""
        return resolve(self.base_variables, self.run_variables)

    def snapshot(self, notebook: str) -> Snapshot:
        """A notebook of the run, read from the store once however many steps and attempts use it."""
        if notebook not in self._snapshots:
            self._snapshots[notebook] = self._read_snapshot(self.notebooks[notebook])
        return self._snapshots[notebook]

    def remaining(self, limit: float | None) -> float | None:
        if self.deadline is None:
            return limit
        left = max(self.deadline - time.monotonic(), 0.0)
        return left if limit is None else min(limit, left)


class RunEngine:
    """Carries claimed runs out, each in a thread of its own, through ``runs`` (the store's side of
    runs) and ``executor`` (where notebooks run)."""

    def __init__(
        self,
        runs: RunService,
        executor: Executor,
        services: StepServices,
        events: Events,
        *,
        report: Callable[[Reporters, RunSummary], list[Delivery]],
        api_url: Callable[[], str | None],
        log: Logger | LoggerAdapter[Any],
        only: set[int] | None = None,
    ) -> None:
        self.runs = runs
        self.executor = executor
        self.services = services
        self.events = events
        self.report = report
        self.api_url = api_url
        self.log = log
        self.worker = this_worker()
        #: Restrict the engine to these runs (``himalia scenario run`` runs its own run only).
        self.only = only
        self._active: dict[int, RunContext] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        slots = max(runs.limits().max_running, 1)
        self._pool = ThreadPoolExecutor(slots + 1, thread_name_prefix="himalia-run")
        self._threads: list[threading.Thread] = []
        self._unsubscribe: list[Callable[[], None]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        recovered = self.runs.recover(STALE_AFTER)
        if recovered:
            self.log.warning("Marked failed the runs a stopped control plane held: %s", recovered)
        self._unsubscribe = [
            self.events.subscribe(RunQueued, lambda _: self.wake()),
            self.events.subscribe(AbortRequested, lambda event: self.abort_local(event.run_id)),
        ]
        for target, name in ((self._dispatch_loop, "dispatch"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"himalia-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking runs; runs in progress are aborted and marked failed, as a restart would."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
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

    def wake(self) -> None:
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
                    run_id = self.runs.claim_next(self.worker, running, self.only)
                    if run_id is None:
                        break
                    self._begin(run_id)
            except Exception:
                self.log.exception("The run dispatcher failed; retrying")
            with self._wake:
                self._wake.wait(timeout=1.0)

    def _heartbeat_loop(self) -> None:
        last_sweep = 0.0
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                for run_id in self.runs.heartbeat(self.worker):
                    self.abort_local(run_id)
                if time.monotonic() - last_sweep > STALE_AFTER.total_seconds():
                    last_sweep = time.monotonic()
                    self.runs.recover(STALE_AFTER)
            except Exception:
                self.log.exception("Run heartbeat failed; retrying")

    def _begin(self, run_id: int) -> None:
        context = self._prepare(run_id)
        if context is None:
            return
        with self._lock:
            self._active[run_id] = context
        self._pool.submit(self._execute_and_release, context)

    def _execute_and_release(self, context: RunContext) -> None:
        """Carry the run out, give its slot back, then send its reports: reporters may retry for a
        while and must hold up neither the queue nor the scenarios waiting for this run."""
        finished = False
        try:
            self.execute(context)
            finished = True
        except Exception:
            self.log.exception("Run #%d crashed", context.run_id)
            self.runs.finish_run(
                context.run_id, RunState.FAILED, "The run engine failed during this run; see the server log."
            )
        finally:
            with self._lock:
                self._active.pop(context.run_id, None)
            self.wake()
        if finished:
            self._report(context)

    def wait_for(self, run_id: int, poll: float = 0.2) -> RunState:
        while (state := self.runs.run_state(run_id)) not in FINISHED_STATES:
            time.sleep(poll)
        return state

    # -- one run ------------------------------------------------------------------------------

    def _prepare(self, run_id: int) -> RunContext | None:
        """Start a claimed run; a run that cannot start is failed with the reason."""
        try:
            return RunContext(self, self.runs.start_run(run_id))
        except HimaliaError as error:
            self.runs.finish_run(run_id, RunState.FAILED, f"The run could not start: {error.message}")
            return None

    def execute(self, context: RunContext) -> None:
        """Carry out the run's steps in order and finish the run (its reports are the caller's)."""
        log = context.log
        definition = context.definition
        log.line(f"Run #{context.run_id} of '{definition.name}' as {context.actor.login}")
        failed = warned = aborted = timed_out = False
        for position, step in enumerate(definition.steps):
            if position < context.run.start_step:
                self.runs.skip_step(context.run_id, position, f"kept from run #{context.run.rerun_of}")
                continue
            if context.aborted.is_set():
                aborted = True
            elif context.remaining(None) == 0.0:
                timed_out = True
            if aborted or timed_out:
                self.runs.skip_step(context.run_id, position, "not run: the run was stopped")
                continue
            if not _should_run(step, failed):
                reason = "an earlier step failed" if failed else "no earlier step failed"
                self.runs.skip_step(context.run_id, position, f"not run: {reason}")
                continue
            outcome = self._run_step(context, position, step)
            if outcome.state == StepState.ABORTED:
                aborted = True
            elif outcome.state == StepState.FAILED and step.ignore_failure:
                warned = True
            elif outcome.state == StepState.FAILED:
                failed = True
            elif outcome.state == StepState.WARNING:
                warned = True
        if aborted or context.aborted.is_set():
            state, message = RunState.ABORTED, "Aborted."
        elif timed_out:
            state, message = RunState.FAILED, f"The scenario ran longer than its {definition.timeout} limit."
        elif failed:
            state, message = RunState.FAILED, ""
        else:
            state, message = (RunState.WARNING if warned else RunState.SUCCEEDED), ""
        log.line(f"Run #{context.run_id} ended: {state}")
        log.flush()
        self.runs.finish_run(context.run_id, state, message, context.run_variables)

    def _run_step(self, context: RunContext, position: int, step: Step) -> StepOutcome:
        attempts = 1 + (step.retries if isinstance(step, NotebookStep) else 0)
        outcome = StepOutcome(StepState.FAILED)
        for attempt in range(1, attempts + 1):
            self.runs.start_step(context.run_id, position, attempt)
            context.log.line(f"[{step.name}] {step.type} step" + (f", attempt {attempt}" if attempt > 1 else ""))
            try:
                outcome = self._dispatch_step(context, position, step)
            except RunAborted:
                outcome = StepOutcome(StepState.ABORTED, "aborted")
            except (StepFailed, HimaliaError) as error:
                message = error.message if isinstance(error, HimaliaError) else str(error)
                outcome = StepOutcome(StepState.FAILED, message)
            except Exception as error:  # a bug of ours must fail the step, not leave the run "running"
                self.log.exception("Step %s of run #%d crashed", step.name, context.run_id)
                outcome = StepOutcome(StepState.FAILED, f"internal error: {type(error).__name__}")
            if outcome.state != StepState.FAILED or context.aborted.is_set():
                break
            if attempt < attempts:
                context.log.line(f"[{step.name}] failed ({outcome.message}); retrying")
        if outcome.state == StepState.FAILED and step.ignore_failure:
            outcome.message = f"{outcome.message} (failure ignored)"
        context.log.line(f"[{step.name}] {outcome.state}" + (f": {outcome.message}" if outcome.message else ""))
        if outcome.variables is not None:
            context.run_variables = outcome.variables
        self.runs.finish_step(
            context.run_id, position, outcome.state, outcome.message, outcome.outputs, outcome.variables
        )
        return outcome

    def _dispatch_step(self, context: RunContext, position: int, step: Step) -> StepOutcome:
        if isinstance(step, NotebookStep):
            return self._notebook(context, position, step)
        if isinstance(step, ComputeMetricsStep):
            computed = self.services.metrics.compute(
                context.actor,
                context.project_key,
                step.dataset,
                step.probes,
                origin="scenario",
                run_id=str(context.run_id),
            )
            values = dict(computed.values)
            return StepOutcome(StepState.SUCCEEDED, f"{len(values)} metrics of {step.dataset}", {"values": values})
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
        snapshot = context.snapshot(step.notebook)
        content, declared = snapshot.content, snapshot.parameters
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
            "HIMALIA_API_URL": self.api_url() or "",
            "HIMALIA_TOKEN": context.token or "",
            "HIMALIA_PROJECT": context.project_key,
            "HIMALIA_RUN_ID": str(context.run_id),
            "HIMALIA_SCENARIO": context.scenario_slug,
            "HIMALIA_TIER": context.definition.tier or "",
        }
        limit = parse_duration(step.timeout).total_seconds() if step.timeout else None
        timeout = context.remaining(limit)
        job = StepJob(
            run_id=context.run_id,
            step=step.name,
            notebook=step.notebook,
            content=content,
            parameters=parameters,
            env=env,
            kernel=step.kernel,
            deadline=deadline_after(timeout),
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
        artifacts = [
            Artifact(kind, media_type, context.log.redactor.data(produced))  # what readers of the run may open
            for kind, produced, media_type in (
                (ArtifactKind.IPYNB, result.executed, "application/x-ipynb+json"),
                (ArtifactKind.HTML, result.html, "text/html"),
            )
            if produced is not None
        ]
        recorded = self.runs.add_artifacts(context.run_id, position, artifacts)
        outputs = {
            "notebook": step.notebook,
            "snapshot": snapshot.digest,
            "parameters": parameters,
            "metrics": recorded,
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
            return StepOutcome(StepState.FAILED, message, outputs)
        return StepOutcome(StepState.SUCCEEDED, "", outputs)

    def _checks(self, context: RunContext, step: RunChecksStep) -> StepOutcome:
        checked = self.services.checks.run_checks(
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
            return StepOutcome(StepState.FAILED, "; ".join(errors), outputs)
        if warnings:
            return StepOutcome(StepState.WARNING, "; ".join(warnings), outputs)
        return StepOutcome(StepState.SUCCEEDED, f"{len(results)} checks of {step.dataset} OK", outputs)

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
            existing = self.services.variables.get_project(context.actor, context.project_key).variables
            self.services.variables.set_project(
                context.actor, context.project_key, Variables(variables={**existing, **values})
            )
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        message = f"{step.scope} variables: {shown}"[:500]
        return StepOutcome(StepState.SUCCEEDED, message, {"variables": values}, {**context.run_variables, **values})

    def _sql(self, context: RunContext, step: SqlStep) -> StepOutcome:
        connections = self.services.connections
        with connections.db.read() as session:
            connection = session.scalar(
                select(Connection)
                .options(selectinload(Connection.group_access))
                .where(Connection.name == step.connection)
            )
            if connection is None:
                raise StepFailed(f"there is no connection '{step.connection}' any more")
            usable = connections.usable(session, context.actor, connection)
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
        return StepOutcome(StepState.SUCCEEDED, f"{affected} rows{note}", outputs)

    def _run_scenario(self, context: RunContext, step: RunScenarioStep) -> StepOutcome:
        child = self.runs.request_child_run(context.run, step.scenario, self.worker, step.wait)
        said = f"run #{child.run_id} of {step.scenario}"
        if child.state == RunState.SKIPPED:
            return StepOutcome(StepState.WARNING, f"{said}: {child.state}", {"run": child.run_id})
        if not step.wait:
            return StepOutcome(StepState.SUCCEEDED, f"{said}: {child.state}", {"run": child.run_id})
        child_context = self._prepare(child.run_id)
        if child_context is None:
            return StepOutcome(StepState.FAILED, f"{said} could not start", {"run": child.run_id})
        with self._lock:
            self._active[child.run_id] = child_context
        context.child_run = child.run_id
        try:
            self.execute(child_context)
        finally:
            context.child_run = None
            with self._lock:
                self._active.pop(child.run_id, None)
        self._report(child_context)
        state = self.runs.run_state(child.run_id)
        mapped = {RunState.SUCCEEDED: StepState.SUCCEEDED, RunState.WARNING: StepState.WARNING}.get(state)
        if state == RunState.ABORTED and context.aborted.is_set():
            mapped = StepState.ABORTED
        return StepOutcome(mapped or StepState.FAILED, f"{said}: {state}", {"run": child.run_id})

    # -- reports ------------------------------------------------------------------------------

    def _report(self, context: RunContext) -> None:
        """Send the run's reporters; their failures are recorded, never change the outcome."""
        reporters = context.definition.reporters
        if not reporters:
            return
        run, api_url = context.run, self.api_url()
        path = f"/projects/{run.project_key}/scenarios/{run.scenario_slug}/runs/{run.run_id}"
        url = api_url + path if api_url else None
        datasets = self.services.datasets

        def dataset_csv(name: str, max_bytes: int) -> bytes:
            return datasets.read_csv(run.actor, run.project_key, name, max_bytes)

        try:
            deliveries = self.report(reporters, self.runs.summarize(run, url, dataset_csv))
            self.runs.record_deliveries(run.run_id, deliveries)
        except Exception:
            self.log.exception("The reporters of run #%d failed", run.run_id)
            return
        for delivery in deliveries:
            if delivery.error:
                self.log.warning("Run #%d: %s failed: %s", run.run_id, delivery.reporter, delivery.error)


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
