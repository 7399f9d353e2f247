"""The API's vocabulary for operations: the board of expected fires, deadlines, stale data, health.

Times are UTC on the wire; each scenario carries the time zone its schedule and deadline are
written in, so that clients show both.
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from himalia.wire.definitions import Sla


class BoardStatus(StrEnum):
    """What one expected fire (or one run) came to, as the board colours it."""

    SUCCEEDED = "succeeded"  # green
    WARNING = "warning"  # yellow
    FAILED = "failed"  # red (aborted runs too)
    MISSED = "missed"  # grey: an expected fire with no run that ran
    RUNNING = "running"  # blue (queued runs too)
    LATE = "late"  # orange: the deadline passed with no successful run, or the run overran


class MissedReason(StrEnum):
    """Why an expected fire has no run that ran."""

    CONTROL_PLANE_DOWN = "control_plane_down"  # no scheduler was alive at the fire time
    SKIPPED_BY_POLICY = "skipped_by_policy"  # the concurrency policy held it back (a run still in progress)
    QUEUE_FULL = "queue_full"  # the run queue was full
    RUN_AS_DEACTIVATED = "run_as_deactivated"  # the user it runs as is deactivated
    CATCH_UP_SKIP = "catch_up_skip"  # noticed late, and the scenario's catch-up policy is 'skip'


class BoardFire(BaseModel):
    """One expected fire time of a scenario, or one run that no fire time accounts for."""

    #: The cron time it was expected at (UTC); ``None`` for a run started by hand or by another trigger.
    due_at: datetime | None
    status: BoardStatus
    run_id: int | None = None
    trigger: str | None = None
    state: str | None = Field(None, description="The run's own state, when there is a run.")
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    #: Longer than the 95th percentile of the scenario's last 20 runs that ran.
    long_running: bool = False
    missed_reason: MissedReason | None = None
    #: In words: why it was missed, which deadline it is late for, the run's message.
    message: str = ""


class DeadlineAlertView(BaseModel):
    kind: Literal["late", "overrun", "missed"]
    due_at: datetime
    run_id: int | None
    message: str
    raised_at: datetime
    cleared_at: datetime | None
    #: Where it was sent: ``[{"reporter", "ok", "detail"}]``.
    deliveries: list[dict[str, object]] = Field(default_factory=list)


class StaleDataset(BaseModel):
    """A dataset whose latest freshness check did not pass."""

    project: str
    dataset: str
    check: str
    outcome: Literal["WARNING", "ERROR", "EMPTY"]
    #: The newest value of the freshness column (or modification time), when known.
    newest: datetime | None
    age_seconds: float | None
    max_age: str | None
    message: str
    evaluated_at: datetime


class BoardScenario(BaseModel):
    project: str
    scenario: str
    name: str
    active: bool
    #: The time zone of its first time trigger (or its deadline's), for showing times as people wrote them.
    timezone: str
    schedule: str | None = Field(None, description="Its time triggers, as written ('daily at 02:00', a cron).")
    next_fire: datetime | None
    sla: Sla | None
    #: The next deadline not yet met, if it has one.
    deadline: datetime | None
    #: The status of the latest fire, which the board shows first.
    status: BoardStatus | None
    p95_seconds: float | None
    fires: list[BoardFire] = Field(description="Newest first, bounded by the board's window.")
    alerts: list[DeadlineAlertView] = Field(description="Alerts still standing.")
    stale_datasets: list[StaleDataset] = Field(description="Datasets its steps read or check that are stale.")


class Board(BaseModel):
    """Everything the morning check reads, for the projects the caller may see."""

    generated_at: datetime
    since: datetime
    scenarios: list[BoardScenario]
    #: Stale datasets that no scenario reads or checks.
    stale_datasets: list[StaleDataset]
    #: How many fires came to each status in the window.
    counts: dict[BoardStatus, int]
    #: Something failed, is late, was missed or is stale.
    needs_attention: bool


class HealthStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    DISABLED = "disabled"  # not in use here (the Kubernetes API without that executor, mail unset)


class HealthComponent(BaseModel):
    name: str
    status: HealthStatus
    message: str
    #: Figures behind the status (seconds since the heartbeat, free bytes), for administrators.
    details: dict[str, object] = Field(default_factory=dict)


class Health(BaseModel):
    """The platform's own state: ``error`` in any component makes it unhealthy."""

    status: Literal["ok", "degraded", "unhealthy"]
    checked_at: datetime
    components: list[HealthComponent]
