"""The run engine: takes queued runs within the limits and carries each one through its steps.

One engine lives in each control plane process that runs scenarios (``himalia serve``, the
standalone server extension, ``himalia scenario run``). Runs are claimed from the store, so
several engines on one PostgreSQL share the queue; each engine sends heartbeats for the runs it
holds and marks failed the runs of engines that stopped. A run acts as its run-as user, limited
to its project, and its kernels get a token of that user scoped to the project, deleted when the
run ends.
"""

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from logging import Logger, LoggerAdapter
from typing import Any

from himalia.core.errors import HimaliaError
from himalia.execution.base import Executor
from himalia.scenarios.reporting import FAILURES, Delivery, RunSummary
from himalia.scenarios.runs import RunService
from himalia.scenarios.steps import step_kind
from himalia.scenarios.steps.base import RunAborted, RunContext, StepFailed, StepOutcome, StepServices
from himalia.scenarios.workers import this_worker
from himalia.store.events import AbortRequested, Events, RunQueued
from himalia.wire.definitions import EmailReporter, Step, WebhookReporter
from himalia.wire.scenarios import FINISHED_STATES, RunState, StepState

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=60)
#: How often an idle dispatcher looks at the queue anyway: runs queued here wake it at once
#: (``RunQueued``, a slot freed); this is for those queued by another process sharing the store.
QUEUE_SAFETY_SECONDS = 60.0

Reporters = Sequence[EmailReporter | WebhookReporter]


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
        run_link: Callable[[str, str, int], str | None] = lambda *_: None,
        failure_notice: Callable[[RunSummary], Reporters] = lambda _: [],
        log: Logger | LoggerAdapter[Any],
        only: set[int] | None = None,
    ) -> None:
        self.runs = runs
        self.executor = executor
        self.services = services
        self.events = events
        self.report = report
        self.api_url = api_url
        self.run_link = run_link
        self.failure_notice = failure_notice
        self.log = log
        self.worker = this_worker()
        #: Restrict the engine to these runs (``himalia scenario run`` runs its own run only).
        self.only = only
        self._active: dict[int, RunContext] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        #: Set by ``wake`` until the dispatcher looked at the queue: a wake between two looks is kept.
        self._woken = False
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
            self._woken = True
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
        """Claim what the limits allow, then sleep until woken: no wake-ups while nothing is queued."""
        while not self._stopping.is_set():
            with self._wake:
                self._woken = False
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
                if not self._woken and not self._stopping.is_set():
                    self._wake.wait(timeout=QUEUE_SAFETY_SECONDS)

    def _heartbeat_loop(self) -> None:
        """Beat every ``HEARTBEAT_SECONDS`` while runs are held here; idle, only the sweep of stopped
        engines' runs is due (a run claimed meanwhile has its first heartbeat from the claim)."""
        last_sweep = 0.0
        while not self._stopping.wait(HEARTBEAT_SECONDS if self._holding() else STALE_AFTER.total_seconds() / 2):
            try:
                for run_id in self.runs.heartbeat(self.worker):
                    self.abort_local(run_id)
                if time.monotonic() - last_sweep > STALE_AFTER.total_seconds():
                    last_sweep = time.monotonic()
                    self.runs.recover(STALE_AFTER)
            except Exception:
                self.log.exception("Run heartbeat failed; retrying")

    def _holding(self) -> bool:
        with self._lock:
            return bool(self._active)

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
        kind = step_kind(step)
        attempts = kind.attempts(step)
        outcome = StepOutcome(StepState.FAILED)
        for attempt in range(1, attempts + 1):
            self.runs.start_step(context.run_id, position, attempt)
            context.log.line(f"[{step.name}] {step.type} step" + (f", attempt {attempt}" if attempt > 1 else ""))
            try:
                outcome = kind.run(context, position, step)
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

    def run_child(self, parent: RunContext, child_id: int) -> bool:
        """Carry out a run that a ``run_scenario`` step waits for, inside the parent's slot; its
        reports are sent once it finished."""
        child = self._prepare(child_id)
        if child is None:
            return False
        with self._lock:
            self._active[child_id] = child
        parent.child_run = child_id
        try:
            self.execute(child)
        finally:
            parent.child_run = None
            with self._lock:
                self._active.pop(child_id, None)
        self._report(child)
        return True

    # -- reports ------------------------------------------------------------------------------

    def _report(self, context: RunContext) -> None:
        """Send the run's reporters (without any, the failure notice to its run-as user, unless
        ``notify_on_failure`` is off); their failures are recorded, never change the outcome."""
        definition, run = context.definition, context.run
        if not definition.reporters and not (
            definition.notify_on_failure and self.runs.run_state(run.run_id) in FAILURES
        ):
            return
        url = self.run_link(run.project_key, run.scenario_slug, run.run_id)
        datasets = self.services.datasets

        def dataset_csv(name: str, max_bytes: int) -> bytes:
            return datasets.read_csv(run.actor, run.project_key, name, max_bytes)

        def failing_rows() -> list[tuple[str, str, dict[str, Any]]]:
            return self.services.checks.failing_rows_of_run(run.actor, run.project_key, run.run_id)

        try:
            summary = self.runs.summarize(run, url, dataset_csv, failing_rows)
            reporters = definition.reporters or self.failure_notice(summary)
            if not reporters:
                return
            deliveries = self.report(reporters, summary)
            self.runs.record_deliveries(run.run_id, deliveries)
        except Exception:
            self.log.exception("The reporters of run #%d failed", run.run_id)
            return
        for delivery in deliveries:
            if delivery.error:
                self.log.warning("Run #%d: %s failed: %s", run.run_id, delivery.reporter, delivery.error)


def _should_run(step: Step, failed_before: bool) -> bool:
    if step.run_if == "always":
        return True
    if step.run_if == "prior_failure":
        return failed_before
    return not failed_before
