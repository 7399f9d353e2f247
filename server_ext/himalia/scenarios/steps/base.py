"""What every step kind is given and returns: the run's context, its log, its outcome.

A step kind (one module of this package each) carries out one kind of scenario step for a run
that reached it; the engine looks the kind up by the step's definition class (``step_kind``),
records the step's state around it and retries it when its kind allows.
"""

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from himalia.core.permissions import GlobalPermission
from himalia.core.units import parse_duration
from himalia.core.variables import resolve
from himalia.data.checks import CheckService
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.metrics import MetricService
from himalia.execution.base import Executor
from himalia.identity.variables import VariableService
from himalia.scenarios.records import Snapshot, StartedRun
from himalia.scenarios.redaction import Redactor, secret_values
from himalia.scenarios.runs import RunService
from himalia.store.orm import utcnow
from himalia.wire.definitions import StepBase
from himalia.wire.scenarios import StepState

LOG_FLUSH_SECONDS = 0.5

S = TypeVar("S", bound=StepBase)


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


class StepHost(Protocol):
    """What steps ask of the engine carrying their run out."""

    runs: RunService
    executor: Executor
    services: StepServices
    #: How this process names itself on the runs it holds.
    worker: str
    #: Where kernels reach the API, once a host serves it.
    api_url: Callable[[], str | None]

    def run_child(self, parent: "RunContext", child_id: int) -> bool:
        """Carry out a run that ``parent`` waits for, inside the parent's slot; ``False`` if it
        could not start."""
        ...


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

    def __init__(self, host: StepHost, run: StartedRun) -> None:
        self.host = host
        self.run = run
        self.run_id = run.run_id
        self.project_key = run.project_key
        self.scenario_slug = run.scenario_slug
        self.definition = run.definition
        self.run_variables: dict[str, Any] = dict(run.variables)
        self.actor = run.actor
        unscoped = replace(run.actor, project_scope=None)
        self.may_run_code = unscoped.has(GlobalPermission.WRITE_UNSAFE_CODE)
        #: Notebooks run isolated (own OS account, own pod) need write_isolated_code; run as the
        #: platform's own account (``shared_account_unsafe``), write_unsafe_code as well.
        self.notebooks_need = [GlobalPermission.WRITE_ISOLATED_CODE]
        if not host.executor.isolates_code:
            self.notebooks_need.append(GlobalPermission.WRITE_UNSAFE_CODE)
        self.may_run_notebooks = all(unscoped.has(permission) for permission in self.notebooks_need)
        # What the run's kernels are given, or could find in an inherited environment.
        self.log = RunLog(host.runs.append_log, run.run_id, Redactor([run.token, *secret_values(os.environ)]))
        self.aborted = threading.Event()
        self.current_handle: Any = None
        self.child_run: int | None = None
        self._snapshots: dict[str, Snapshot] = {}
        timeout = run.definition.timeout
        self.deadline = time.monotonic() + parse_duration(timeout).total_seconds() if timeout else None

    def variables(self) -> dict[str, Any]:
        """Instance < project < scenario and run variables, expanded."""
        return resolve(self.run.base_variables, self.run_variables)

    def snapshot(self, notebook: str) -> Snapshot:
        """A notebook of the run, read from the store once however many steps and attempts use it."""
        if notebook not in self._snapshots:
            self._snapshots[notebook] = self.host.runs.snapshot(self.run.notebooks[notebook])
        return self._snapshots[notebook]

    def remaining(self, limit: float | None) -> float | None:
        if self.deadline is None:
            return limit
        left = max(self.deadline - time.monotonic(), 0.0)
        return left if limit is None else min(limit, left)


class StepKind(ABC, Generic[S]):
    """One kind of step: the definition class it carries out, and how."""

    definition: ClassVar[type[StepBase]]

    def attempts(self, step: S) -> int:
        """How many times the step may be tried before it counts as failed."""
        return 1

    @abstractmethod
    def run(self, context: RunContext, position: int, step: S) -> StepOutcome:
        """Carry the step out; raise ``StepFailed`` (or a ``HimaliaError``) to fail it with a sentence,
        ``RunAborted`` when the run was aborted meanwhile."""
