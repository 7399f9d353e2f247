"""The API's vocabulary for scenarios and their runs (see ``wire.common`` for the conventions)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Base64Bytes, BaseModel, Field, model_validator

from himalia.wire.common import Request
from himalia.wire.definitions import ProjectGlob, ProjectPath, ScenarioDefinition


class RunState(StrEnum):
    """Where a run is: waiting for a slot, running, or ended one of five ways."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    WARNING = "warning"
    FAILED = "failed"
    ABORTED = "aborted"
    SKIPPED = "skipped"  # never started: the concurrency policy or a full queue held it back


class StepState(StrEnum):
    """Where one step of a run is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"


class ArtifactKind(StrEnum):
    """What a notebook step keeps of its execution."""

    IPYNB = "ipynb"  # the executed notebook
    HTML = "html"  # its HTML report


#: Runs that hold (or wait for) a slot; the others have ended.
ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.RUNNING})
FINISHED_STATES = frozenset(RunState) - ACTIVE_STATES
#: Runs that ended after they ran (a skipped run never did), as "the previous outcome" counts them.
RAN_STATES = FINISHED_STATES - {RunState.SKIPPED}


#: Project files sent with a save: relative path -> content (base64 in JSON), bounded in count here
#: and in size by ``ProjectFiles`` and the request body's own limit.
ProjectFilesUpload = Annotated[dict[ProjectPath, Base64Bytes], Field(max_length=100_000)]


class SaveScenario(Request):
    """A scenario as JSON or YAML, with the notebooks it runs (path -> nbformat JSON).

    Notebooks not given are read from the control plane's notebook folder; either way they are
    snapshotted now.
    """

    definition: ScenarioDefinition | None = None
    yaml: str | None = Field(None, max_length=1_000_000)
    notebooks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    project_files: ProjectFilesUpload | None = Field(
        None,
        description="The project files beside the first notebook (path -> base64), read by the person's own "
        "server in hub mode; a host with a notebook folder reads them there instead.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> "SaveScenario":
        if (self.definition is None) == (self.yaml is None):
            raise ValueError("give exactly one of 'definition' or 'yaml'")
        return self


class SetActive(Request):
    active: bool


class LastRun(BaseModel):
    id: int
    state: RunState
    created_at: datetime
    ended_at: datetime | None


class FileTreeSummary(BaseModel):
    """The project files a scenario snapshotted for its notebooks."""

    digest: str = Field(description="SHA-256 of the tree's entries.")
    files: int
    bytes: int


class PreviewFiles(Request):
    """Which project files saving a scenario would snapshot beside ``notebook``, before saving it."""

    notebook: ProjectPath = Field(description="The first notebook's path below the Jupyter server's root.")
    files: list[ProjectGlob] | None = Field(None, max_length=100, description="The scenario's `files:` globs, if any.")
    project_files: ProjectFilesUpload | None = Field(None, description="As in a save: the files themselves.")


class FilesPreview(BaseModel):
    """What saving would snapshot: as many files and bytes as the save would store, and their paths."""

    files: int
    bytes: int
    paths: list[str] = Field(description="Relative to the notebook's folder, sorted.")


class DescribeScenario(BaseModel):
    project: str
    id: str
    name: str
    description: str
    active: bool
    owner: str
    run_as: str
    updated_by: str
    revision: int
    notebooks: dict[str, str] = Field(description="Notebook path -> snapshot digest.")
    files: FileTreeSummary | None = Field(
        None, description="The project files its notebooks run beside, snapshotted with them (none without notebooks)."
    )
    next_fire_at: datetime | None
    last_run: LastRun | None
    created_at: datetime
    updated_at: datetime
    definition: ScenarioDefinition


class NotebookParameter(BaseModel):
    name: str
    type: str
    default: str = Field(description="The default as written in the parameters cell.")
    help: str = ""
    value: Any = Field(None, description="The value the scenario's step gives, if any.")


class StepParameters(BaseModel):
    step: str
    notebook: str
    parameters: list[NotebookParameter]


class ScenarioParameters(BaseModel):
    """What a "Run now" form offers: the notebook steps' typed parameters and the variables."""

    steps: list[StepParameters]
    variables: dict[str, Any]


class RunRequest(Request):
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Notebook parameters by name, for every notebook step declaring them."
    )
    variables: dict[str, Any] = Field(default_factory=dict, description="Override scenario variables.")


class RerunRequest(Request):
    from_failed_step: bool = Field(False, description="Start at the first failed step, keeping earlier results.")


class DescribeStep(BaseModel):
    position: int
    name: str
    type: str
    state: StepState
    message: str
    attempts: int
    outputs: dict[str, Any]
    artifacts: list[ArtifactKind] = Field(
        default_factory=list, description="The files the step produced (a run's own page; empty in listings)."
    )
    started_at: datetime | None
    ended_at: datetime | None


class RunInput(BaseModel):
    """A dataset the run read: by a step (metrics, checks) or by its kernels with its token."""

    dataset: str
    schema_digest: str = Field(description="SHA-256 of its columns and types when read.")
    read_by: Literal["step", "kernel"]
    rows: int | None = Field(None, description="What the read counted: the record count, or the rows sent.")


class DescribeRun(BaseModel):
    id: int
    project: str
    scenario: str
    state: RunState
    trigger: str
    trigger_detail: dict[str, Any]
    requested_by: str
    run_as: str
    parameters: dict[str, Any]
    variables: dict[str, Any]
    notebooks: dict[str, str]
    message: str
    rerun_of: int | None
    start_step: int
    abort_requested: bool
    deliveries: list[dict[str, Any]]
    inputs: list[RunInput] = Field(default_factory=list, description="The datasets it read, for its reproducibility.")
    pinned: bool = Field(False, description="Kept whatever retention says.")
    purged_at: datetime | None = Field(None, description="When retention purged its artifacts and log.")
    artifacts: list[str] = Field(
        description="The files the run's steps produced, as step-<position>.<kind> (empty in listings)."
    )
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    steps: list[DescribeStep]


# -- comparing two runs ----------------------------------------------------------------------------


class ComparedRun(BaseModel):
    id: int
    state: RunState
    trigger: str
    requested_by: str
    run_as: str
    message: str
    started_at: datetime | None
    ended_at: datetime | None
    seconds: float | None = Field(description="How long it ran (None before it started or while it runs).")


class ComparedValue(BaseModel):
    """A parameter, variable, metric or check outcome in each run (``None`` where it has none)."""

    name: str
    dataset: str | None = None
    a: Any = None
    b: Any = None
    same: bool


class ComparedCell(BaseModel):
    """A code or markdown cell that differs, by its position in each notebook (``None``: absent)."""

    a: int | None
    b: int | None
    change: Literal["added", "removed", "changed"]
    diff: str = Field(description="The cell's source as a unified diff from run a's to run b's.")


class ComparedNotebook(BaseModel):
    path: str
    a: str | None = Field(description="The SHA-256 of the notebook snapshot run a ran (None: not in run a).")
    b: str | None
    same: bool
    cells: list[ComparedCell] = Field(default_factory=list, description="Where the snapshots differ.")


class ComparedFiles(BaseModel):
    """The project files each run ran beside (the trees' digests) and what differs between them."""

    a: str | None
    b: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int


class ComparedStep(BaseModel):
    position: int
    name: str
    a: StepState | None
    b: StepState | None
    seconds_a: float | None
    seconds_b: float | None
    message_a: str = ""
    message_b: str = ""


class ComparedEnvironment(BaseModel):
    """What a notebook step's kernel ran on in each run (its reproducibility record), and which
    packages differed: ``name==version`` added in run b or removed from it, versions changed."""

    position: int
    step: str
    settings: list[ComparedValue] = Field(description="Kernel, Python, executor, image, tier, environment digest.")
    added: list[str]
    removed: list[str]
    changed: list[ComparedValue]


class NotebookDiff(BaseModel):
    """One notebook as two runs ran it, in nbdime's terms: run a's snapshot and nbdime's diff to run
    b's, which the lab renders with nbdime's own notebook diff view."""

    path: str
    base: dict[str, Any] = Field(description="Run a's snapshot (an empty notebook if run a did not run it).")
    diff: list[dict[str, Any]] = Field(description="nbdime's diff from it to run b's snapshot.")


class RunComparison(BaseModel):
    """Two runs of one scenario side by side (``GET …/runs/{a}/compare/{b}``). Metrics and check
    outcomes are those the runs recorded, the last of each."""

    project: str
    scenario: str
    a: ComparedRun
    b: ComparedRun
    parameters: list[ComparedValue]
    variables: list[ComparedValue]
    notebooks: list[ComparedNotebook]
    files: ComparedFiles
    steps: list[ComparedStep]
    environments: list[ComparedEnvironment] = Field(
        description="The notebook steps' records, where either run has one."
    )
    inputs: list[ComparedValue] = Field(
        description="The datasets each run read: the schema digest and count of its last read, by dataset."
    )
    metrics: list[ComparedValue]
    checks: list[ComparedValue]


class PurgeReport(BaseModel):
    """What a retention pass purged (or, with ``dry_run``, would purge)."""

    dry_run: bool
    runs: int = Field(description="Runs whose artifacts and logs were purged.")
    artifact_bytes: int
    log_bytes: int
    snapshots: int = Field(description="Notebook snapshots no scenario and no kept run references.")
    file_trees: int
    file_blobs: int
    snapshot_bytes: int = Field(description="Bytes of the snapshots and project-file blobs purged.")


class ProjectStorage(BaseModel):
    """The space a project's runs and snapshots take in the store."""

    project: str
    runs: int
    pinned_runs: int
    purged_runs: int = Field(description="Runs whose artifacts and logs retention purged.")
    artifact_bytes: int = Field(description="Executed notebooks and reports of its runs.")
    log_bytes: int
    snapshot_bytes: int = Field(
        description="Notebook snapshots its scenarios and kept runs reference (shared ones count here too)."
    )
    file_bytes: int = Field(description="Project files its scenarios and kept runs reference.")


class PinRun(Request):
    pinned: bool = Field(description="True keeps the run whatever retention says.")


class PurgeRequest(Request):
    dry_run: bool = Field(False, description="Say what would be purged, and purge nothing.")
