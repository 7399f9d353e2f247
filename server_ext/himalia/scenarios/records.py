"""What the run store hands the engine and the scheduler: plain records, read in one transaction.

They carry what a run or a trigger needs from the store so that neither the engine nor the
scheduler holds an ORM row or opens a session.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from himalia.identity.caller import Caller
from himalia.wire.definitions import ScenarioDefinition
from himalia.wire.scenarios import ArtifactKind, RunState
from himalia.wire.steps import ProjectFile


@dataclass(frozen=True)
class RunLimits:
    max_running: int
    max_running_per_user: int
    max_queued: int


@dataclass(frozen=True)
class StartedRun:
    """A claimed run as its engine carries it out, read in the one transaction that starts it."""

    run_id: int
    project_key: str
    scenario_slug: str
    definition: ScenarioDefinition
    notebooks: dict[str, str]
    #: The project files its notebooks run beside (the run's file tree).
    files: list[ProjectFile]
    parameters: dict[str, Any]
    variables: dict[str, Any]
    #: Instance and project variables, below the run's own.
    base_variables: dict[str, Any]
    start_step: int
    rerun_of: int | None
    #: The run-as user, limited to the run's project.
    actor: Caller
    #: The project-scoped API token of the run's kernels, valid until the run ends.
    token: str


@dataclass(frozen=True)
class Artifact:
    """A file a step produced (an executed notebook, an HTML report), kept with the run."""

    kind: ArtifactKind
    media_type: str
    content: bytes


@dataclass(frozen=True)
class Snapshot:
    """A notebook as a run uses it: its content and the parameters its parameters cell declares."""

    digest: str
    content: str
    parameters: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ChildRun:
    """A run that a ``run_scenario`` step requested."""

    run_id: int
    state: RunState


@dataclass(frozen=True)
class Fire:
    """A run the scheduler fires: its scenario's row, the trigger kind and detail, its fire key."""

    row_id: int
    trigger: str
    detail: dict[str, Any]
    fire_key: str


@dataclass(frozen=True)
class ScheduledRow:
    """An active scenario as the scheduler loads it, with what its catch-up needs."""

    row_id: int
    project_id: int
    slug: str
    #: The stored definition's JSON text.
    definition: str
    #: When it was last saved (or activated), and the fire time of its last time-triggered run.
    saved_at: datetime
    last_fire: str | None


@dataclass(frozen=True)
class PollTarget:
    """What a polling trigger observes with: its project, the run-as user, its last observation."""

    project_key: str
    actor: Caller
    state: dict[str, Any]


@dataclass(frozen=True)
class EndedRun:
    """What ``after_scenario`` triggers ask of a run that finished."""

    project_id: int
    scenario_slug: str
    state: RunState
