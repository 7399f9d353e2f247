"""Scenario definitions: what a scenario is, as YAML people write and the API stores.

A scenario has steps (run in order, each with a run condition), triggers (time, dataset change,
after another scenario, SQL condition) and reporters (email, webhook). This module only defines
and validates; running, scheduling and reporting build on it. Durations are written ``90s``,
``30m``, ``2h`` or ``1d``; schedules as cron expressions with a time zone or as the simple forms
"every 15 minutes", "hourly at :30", "daily at 02:00", "weekdays at 07:30",
"weekly on monday at 06:00".

Schedules are bounded: a cron expression has the five fields of cron (no seconds, no years), it
must fire at all (``0 0 30 2 *`` never does), and no trigger may fire or poll more often than the
minimum interval (``MIN_SCHEDULE_INTERVAL``, or the control plane's ``min_schedule_interval``,
given in the validation context; see ``input_context``). Definitions read back from the store are
validated with ``STORED`` instead: they were checked when saved, and a stricter rule since must
not make a saved scenario unreadable (the scheduler still never fires one more often than the
minimum).
"""

import re
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from himalia.core.documents import load_document
from himalia.core.units import parse_duration
from himalia.wire.common import CheckName, ConnectionName, DatasetName, Login
from himalia.wire.steps import project_path_problem

#: The most steps, triggers and reporters one scenario may have: bounds what saving and running cost.
MAX_STEPS = 200
MAX_TRIGGERS = 20
MAX_REPORTERS = 20
#: No trigger fires or polls more often than this unless the control plane configures otherwise.
MIN_SCHEDULE_INTERVAL = timedelta(minutes=1)
#: The validation context of definitions read back from the store (see the module docstring).
STORED: dict[str, Any] = {"stored": True}

ScenarioId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,99}$")]
StepName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _duration(value: str) -> str:
    parse_duration(value)  # raises "'soon' is not a duration such as 90m, 36h, 2d or 1w"
    return value


Duration = Annotated[str, AfterValidator(_duration)]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def input_context(min_schedule_interval: timedelta = MIN_SCHEDULE_INTERVAL) -> dict[str, Any]:
    """The validation context of definitions people send, under a control plane's minimum interval."""
    return {"min_schedule_interval": min_schedule_interval}


def _minimum_interval(info: ValidationInfo) -> timedelta | None:
    """The minimum interval to enforce, or ``None`` for a definition read back from the store."""
    context = info.context or {}
    if context.get("stored"):
        return None
    minimum: timedelta = context.get("min_schedule_interval", MIN_SCHEDULE_INTERVAL)
    return minimum


def _spoken(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_SIMPLE_FORMS: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"^every (\d+) minutes?$"),
        lambda m: f"*/{int(m[1])} * * * *" if 0 < int(m[1]) <= 60 and 60 % int(m[1]) == 0 else None,
    ),
    (
        re.compile(r"^every (\d+) hours?$"),
        lambda m: f"0 */{int(m[1])} * * *" if 0 < int(m[1]) <= 24 and 24 % int(m[1]) == 0 else None,
    ),
    (re.compile(r"^hourly at :(\d{2})$"), lambda m: f"{int(m[1])} * * * *" if int(m[1]) < 60 else None),
    (re.compile(r"^daily at (\d{1,2}):(\d{2})$"), lambda m: _at(m[1], m[2], "*")),
    (re.compile(r"^weekdays at (\d{1,2}):(\d{2})$"), lambda m: _at(m[1], m[2], "1-5")),
    (
        re.compile(r"^weekly on (" + "|".join(WEEKDAYS) + r") at (\d{1,2}):(\d{2})$"),
        lambda m: _at(m[2], m[3], str(WEEKDAYS.index(m[1]))),
    ),
]


def _at(hour: str, minute: str, weekdays: str) -> str | None:
    return f"{int(minute)} {int(hour)} * * {weekdays}" if int(hour) < 24 and int(minute) < 60 else None


@lru_cache(maxsize=4096)
def schedule_to_cron(schedule: str) -> str:
    """The cron expression of a simple schedule, or ``ValueError`` listing the forms understood."""
    text = " ".join(schedule.lower().split())
    if zero := re.match(r"^every 0+ (minute|hour)s?$", text):
        raise ValueError(f"'{schedule}' is not a schedule: the interval must be at least 1 {zero[1]}")
    for pattern, make in _SIMPLE_FORMS:
        match = pattern.match(text)
        if match and (cron := make(match)):
            return str(cron)
    raise ValueError(
        f"'{schedule}' is not a schedule: write 'every N minutes', 'every N hours', 'hourly at :MM', "
        "'daily at HH:MM', 'weekdays at HH:MM' or 'weekly on <day> at HH:MM', or give a cron expression as cron:"
    )


#: The macros croniter reads as five-field expressions.
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
#: Where searches of fire times start: a leap year that is also a century, on wall-clock time.
_REFERENCE = datetime(2000, 1, 1)
#: How far the shortest gap between fires is looked for: every gap of a five-field expression shows
#: within two days of fires (minute by minute at most) or five years (a leap day included).
_GAP_FIRES, _GAP_YEARS = 2 * 24 * 60 + 1, 5


def check_cron(expression: str) -> None:
    """Refuse what is not a five-field cron expression that fires, with a sentence saying why."""
    fields = expression.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in CRON_MACROS)):
        raise ValueError(
            f"'{expression}' is not a cron expression of five fields (minute hour day month weekday): "
            "seconds and years are not accepted"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"'{expression}' is not a cron expression (minute hour day month weekday)")
    for field in fields:
        for part in field.split(","):
            low, dash, high = part.split("/")[0].partition("-")
            if dash and low.lower() == high.lower():
                # croniter reads an equal range as the whole cycle (every day of April for
                # "31-31 4"), cron as the one value: the two disagree, so neither is guessed.
                raise ValueError(f"'{expression}': the range '{low}-{high}' starts and ends at once; write '{low}'")
    try:
        croniter(expression, _REFERENCE).get_next(datetime)
    except CroniterError:
        raise ValueError(f"'{expression}' never fires: no date matches its day and month") from None


def gap_below(expression: str, minimum: timedelta) -> timedelta | None:
    """A time between two consecutive fires of a valid five-field expression shorter than
    ``minimum``, or ``None``. On the wall clock: a daylight-saving change can shorten one gap,
    and the scheduler covers that."""
    if minimum <= timedelta(minutes=1):
        return None  # five fields fire a minute apart at the closest
    fires = wall_schedule(expression)
    horizon = _REFERENCE.replace(year=_REFERENCE.year + _GAP_YEARS)
    previous = fires.after(_REFERENCE - timedelta(minutes=1))
    for _ in range(_GAP_FIRES):
        following = fires.after(previous)
        if following - previous < minimum:
            return following - previous
        if following > horizon:
            break
        previous = following
    return None


def _check_interval(written: str, expression: str, minimum: timedelta | None) -> None:
    if minimum is not None and (gap := gap_below(expression, minimum)) is not None:
        raise ValueError(
            f"'{written}' fires {_spoken(gap)} apart, more often than the minimum interval of {_spoken(minimum)}"
        )


def _check_poll_interval(interval: str, info: ValidationInfo) -> str:
    minimum = _minimum_interval(info)
    if minimum is None:
        return interval
    every = parse_duration(interval)
    if every <= timedelta(0):
        raise ValueError(f"'{interval}' is not an interval: it must be longer than 0")
    if every < minimum:
        raise ValueError(f"'{interval}' is shorter than the minimum interval of {_spoken(minimum)}")
    return interval


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- steps ----------------------------------------------------------------------------------------


class StepBase(Strict):
    name: StepName
    run_if: Literal["no_prior_failure", "always", "prior_failure"] = Field(
        "no_prior_failure", description="Run when no earlier step failed (default), always, or only after a failure."
    )
    ignore_failure: bool = Field(False, description="A failure of this step does not fail the run.")


class NotebookStep(StepBase):
    type: Literal["notebook"]
    notebook: Annotated[str, StringConstraints(pattern=r"^[^/].*\.ipynb$")]
    parameters: dict[str, Any] = Field(default_factory=dict, description="Values may use ${variables}.")
    kernel: str | None = Field(None, description="Defaults to the notebook's own kernel.")
    timeout: Duration | None = None
    retries: int = Field(0, ge=0, le=10)
    hide_code: bool = Field(False, description="Leave the code out of the HTML report.")


class ComputeMetricsStep(StepBase):
    type: Literal["compute_metrics"]
    dataset: DatasetName
    probes: list[str] | None = None


class RunChecksStep(StepBase):
    type: Literal["run_checks"]
    dataset: DatasetName
    checks: list[CheckName] | None = Field(None, description="Defaults to every check of the dataset.")


class SetVariablesStep(StepBase):
    """Values, or ``code`` defining ``def variables(current)`` returning a dict (write_unsafe_code)."""

    type: Literal["set_variables"]
    scope: Literal["project", "scenario"] = "scenario"
    values: dict[VariableName, Any] | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None

    @model_validator(mode="after")
    def _values_or_code(self) -> "SetVariablesStep":
        if (self.values is None) == (self.code is None):
            raise ValueError("give exactly one of 'values' or 'code'")
        return self


class SqlStep(StepBase):
    type: Literal["sql"]
    connection: ConnectionName
    statement: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    parameters: dict[VariableName, Any] = Field(
        default_factory=dict, description="Bound as :name; values may use ${variables}."
    )


class RunScenarioStep(StepBase):
    type: Literal["run_scenario"]
    scenario: ScenarioId
    wait: bool = True


Step = Annotated[
    NotebookStep | ComputeMetricsStep | RunChecksStep | SetVariablesStep | SqlStep | RunScenarioStep,
    Field(discriminator="type"),
]


# -- triggers -------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def time_zone(name: str) -> ZoneInfo:
    """The zone named ``name``, kept: ``ZoneInfo`` keeps only a few strongly and re-reads the others
    from their files, which the scheduler's start paid for each of its 10,000 fire times."""
    return ZoneInfo(name)


def _known_zone(zone: str) -> str:
    try:
        time_zone(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{zone}' is not a time zone such as Europe/Paris or UTC") from None
    return zone


class TimeTrigger(Strict):
    type: Literal["time"]
    cron: str | None = Field(None, max_length=200, description="Five fields: minute hour day month weekday.")
    schedule: str | None = Field(None, max_length=200, description="A simple form such as 'daily at 02:00'.")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        return _known_zone(zone)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str | None, info: ValidationInfo) -> str | None:
        if cron is None:
            return cron
        minimum = _minimum_interval(info)
        if minimum is None:  # read back from the store: what the scheduler needs to compute fires
            try:
                wall_schedule(cron)
            except Exception:  # croniter's own validity test (is_valid) catches every error too
                raise ValueError(f"'{cron}' is not a cron expression (minute hour day month weekday)") from None
            return cron
        check_cron(cron)
        _check_interval(cron, cron, minimum)
        return cron

    @field_validator("schedule")
    @classmethod
    def _understood_schedule(cls, schedule: str | None, info: ValidationInfo) -> str | None:
        if schedule is not None:
            _check_interval(schedule, schedule_to_cron(schedule), _minimum_interval(info))
        return schedule

    @model_validator(mode="after")
    def _cron_or_schedule(self) -> "TimeTrigger":
        if (self.cron is None) == (self.schedule is None):
            raise ValueError("give exactly one of 'cron' or 'schedule'")
        return self

    def expression(self) -> str:
        return self.cron or schedule_to_cron(self.schedule or "")

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``, in the trigger's zone (DST included)."""
        return next_fire_time(self, after).astimezone(time_zone(self.timezone))


class DatasetChangeTrigger(Strict):
    """Fires when the dataset's fingerprint (SQL: count and max of ``column``, or ``query``; files:
    sizes and modification times) changed and then stayed the same for ``grace``."""

    type: Literal["dataset_change"]
    dataset: DatasetName
    column: str | None = None
    query: str | None = None
    interval: Duration = "5m"
    grace: Duration = "2m"

    bounded_interval = field_validator("interval")(_check_poll_interval)


class AfterScenarioTrigger(Strict):
    type: Literal["after_scenario"]
    scenario: ScenarioId
    on: Literal["success", "any"] = "success"


class SqlConditionTrigger(Strict):
    type: Literal["sql_condition"]
    connection: ConnectionName
    query: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    interval: Duration = "5m"

    bounded_interval = field_validator("interval")(_check_poll_interval)


Trigger = Annotated[
    TimeTrigger | DatasetChangeTrigger | AfterScenarioTrigger | SqlConditionTrigger, Field(discriminator="type")
]

# -- reporters ------------------------------------------------------------------------------------

SendWhen = Literal["always", "failure", "warning_or_failure", "success", "outcome_change"]


class AlertConditions(Strict):
    """Beyond run outcomes (``when``), a reporter may be told of deadlines: sent once per occurrence."""

    on_late: bool = Field(
        False, description="Send when the scenario's deadline passes with no successful run, or a run overruns."
    )
    on_missed: bool = Field(
        False, description="Send when an expected fire has no run (the platform was down, the policy skipped it)."
    )


class RunRetention(Strict):
    """A finished run keeps its artifacts (executed notebooks, reports) and log while it is one of
    its scenario's last ``keep_runs`` runs or younger than ``keep_days``; past both, retention purges
    them (the run's record, its metrics, check results and the audit trail stay). Pinned runs are kept."""

    keep_runs: int | None = Field(None, ge=1, le=1_000_000)
    keep_days: float | None = Field(None, gt=0, le=36_500, allow_inf_nan=False)


class EmailAttachments(Strict):
    report: bool = True
    log: bool = False
    dataset: DatasetName | None = None
    failing_rows: bool = Field(
        False,
        description="A CSV of the rows each failed check on a row condition kept in this run "
        "(the run-as user needs export_datasets, as for a dataset).",
    )
    max_bytes: int = Field(5_000_000, ge=1, le=50_000_000)


class EmailReporter(AlertConditions):
    type: Literal["email"]
    to: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    subject: str = "${scenarioName}: ${outcome}"
    body: str | None = Field(None, description="Defaults to step summaries, check results and variables.")
    attach: EmailAttachments = Field(default_factory=EmailAttachments)
    when: SendWhen = "always"


class WebhookReporter(AlertConditions):
    type: Literal["webhook"]
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    format: Literal["slack", "teams", "json"] = "json"
    when: SendWhen = "always"


Reporter = Annotated[EmailReporter | WebhookReporter, Field(discriminator="type")]


# -- deadlines ------------------------------------------------------------------------------------

WallTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Sla(Strict):
    """When results must be ready and how long a run may take; the scheduler alerts while there is time to act.

    Each expected fire of a time trigger has one deadline: the first ``ready_by`` at or after the
    fire time on the wall clock of ``timezone``. A scenario without time triggers has one deadline
    a day. The deadline is met by a run that ends successfully (succeeded or warning) between the
    fire time and the deadline.
    """

    ready_by: WallTime | None = Field(None, description="A wall-clock time such as '07:00'.")
    timezone: str | None = Field(None, description="Defaults to the first time trigger's time zone, else UTC.")
    max_duration: Duration | None = Field(None, description="A run still running after this is overrunning.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        return None if zone is None else _known_zone(zone)

    @model_validator(mode="after")
    def _something_to_watch(self) -> "Sla":
        if self.ready_by is None and self.max_duration is None:
            raise ValueError("give 'ready_by', 'max_duration' or both")
        return self


# -- the scenario ---------------------------------------------------------------------------------


def _inside_the_tree(glob: str) -> str:
    """A ``files:`` glob (or a path) names files inside the tree: relative, without ``..``, NUL or backslashes."""
    problem = project_path_problem(glob.removesuffix("/"))
    if problem:
        raise ValueError(problem)
    return glob


ProjectGlob = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(_inside_the_tree)]
#: A file's path in a project's folder (a notebook's), under the same rules as globs.
ProjectPath = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_inside_the_tree)]


class ScenarioDefinition(Strict):
    id: ScenarioId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str = ""
    active: bool = Field(True, description="Whether its triggers fire; it can always be run by hand.")
    run_as: Login | None = Field(
        None, description="Defaults to whoever saves the scenario; only an administrator may name someone else."
    )
    tier: str | None = Field(None, description="Hardware tier, for executors that honour tiers.")
    timeout: Duration | None = None
    concurrency: Literal["skip", "queue", "parallel"] = Field("skip", description="When a run is already in progress.")
    catch_up: Literal["skip", "run_once"] = Field("skip", description="Fire times missed while the platform was down.")
    variables: dict[VariableName, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    triggers: list[Trigger] = Field(default_factory=list, max_length=MAX_TRIGGERS)
    reporters: list[Reporter] = Field(default_factory=list, max_length=MAX_REPORTERS)
    files: list[ProjectGlob] | None = Field(
        None,
        max_length=100,
        description="Globs of the project files its runs need (.gitignore syntax: '*.py', 'data/'), "
        "relative to the folder of its first notebook; by default that folder's whole tree.",
    )
    notify_on_failure: bool = Field(
        True, description="With no reporter, mail a failed run to the run-as user (when mail is configured)."
    )
    sla: Sla | None = Field(None, description="The deadline its results must meet and the longest a run may take.")
    retention: "RunRetention | None" = Field(
        None, description="How long its runs keep their artifacts and logs; unset fields take the instance's."
    )

    @model_validator(mode="after")
    def _unique_step_names(self) -> "ScenarioDefinition":
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"two steps are named '{step.name}'")
            seen.add(step.name)
        for trigger in self.triggers:
            if isinstance(trigger, AfterScenarioTrigger) and trigger.scenario == self.id:
                raise ValueError("a scenario cannot be triggered by its own end")
        return self

    def next_fire(self, after: datetime) -> datetime | None:
        """The earliest time a time trigger fires after ``after`` (whether or not the scenario is active)."""
        fires = [t.next_fire(after) for t in self.triggers if isinstance(t, TimeTrigger)]
        return min(fires) if fires else None


def load_scenario(text: str, filename: str = "<scenario>", context: dict[str, Any] | None = None) -> ScenarioDefinition:
    """A scenario from YAML; errors read ``FILE:LINE: steps[1].timeout: ...``. ``context``
    defaults to ``input_context()``: the default minimum interval."""
    return load_document(text, ScenarioDefinition, filename, context=context)


def stored_definition(data: dict[str, Any] | str) -> ScenarioDefinition:
    """A definition read back from the store (a scenario's, a run's), validated with ``STORED``;
    given as the column's JSON text, it is parsed by pydantic's own parser (the scheduler's start
    reads 10,000: twice as fast as ``json.loads`` then validating)."""
    if isinstance(data, str):
        return ScenarioDefinition.model_validate_json(data, context=STORED)
    return ScenarioDefinition.model_validate(data, context=STORED)


def json_schema() -> dict[str, Any]:
    """The JSON schema of the YAML format (for editors and CI)."""
    schema = ScenarioDefinition.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Himalia scenario"
    return schema


#: Wider than any daylight-saving shift: the wall-clock window searched around a change.
_DST_WINDOW = timedelta(hours=3)


# -- fire times across daylight-saving changes ----------------------------------------------------
#
# croniter given zone-aware datetimes misbehaves around daylight-saving changes (croniter 7: the
# fire after 03:00 on a spring-forward night can be 02:30 *before* it, again and again, and a
# fixed time fires twice when clocks go back). So cron runs on naive wall-clock times here, and
# each is placed on the time line with zoneinfo.


def _fixed_time(expression: str) -> bool:
    """Whether the expression fires at fixed wall-clock times, not by elapsed time: as in Vixie
    cron, unless its minute or hour field starts with ``*``."""
    fields = expression.split()
    if expression.startswith("@"):
        return expression.strip() != "@hourly"
    return not (fields[0].startswith("*") or fields[1].startswith("*"))


def _instants(wall: datetime, zone: ZoneInfo, fixed: bool) -> list[datetime]:
    """The UTC instants at which the zone's clocks show ``wall``."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:  # shown twice: clocks went back
        return [first.astimezone(UTC)] if fixed else [first.astimezone(UTC), second.astimezone(UTC)]
    # Never shown (clocks went forward): fire when the skipped span ends. fold=1 reads the wall time
    # with the offset after the change, which places it before the change; fold=0 after it.
    before, after = int(second.timestamp()), int(first.timestamp())
    offset = second.utcoffset()  # the offset after the change
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return [datetime.fromtimestamp(after, UTC)]


def _steady(zone: ZoneInfo, moment: datetime) -> bool:
    """Whether the zone's offset is the same a few hours either side of ``moment``: known for the
    whole hour it falls in, since the fires of a schedule come many to an hour and hour after hour."""
    return _steady_hour(zone, int(moment.timestamp()) // 3600)


@lru_cache(maxsize=4096)
def _steady_hour(zone: ZoneInfo, hour: int) -> bool:
    """Whether the offset is the same from ``_DST_WINDOW`` before the hour to as long after its end
    (sampled at both ends of the hour and of that span, as ``_DST_WINDOW`` bounds a change)."""
    start = datetime.fromtimestamp(hour * 3600, UTC)
    shifts = (-_DST_WINDOW, timedelta(0), timedelta(hours=1), timedelta(hours=1) + _DST_WINDOW)
    return len({(start + shift).astimezone(zone).utcoffset() for shift in shifts}) == 1


def _nearest(trigger: TimeTrigger, moment: datetime, forward: bool) -> datetime:
    zone = time_zone(trigger.timezone)
    expression = trigger.expression()
    fires = wall_schedule(expression)
    wall = moment.astimezone(zone).replace(tzinfo=None)
    if forward:
        sign, step = 1, fires.after

        def beyond(instant: datetime) -> bool:
            return instant > moment
    else:
        sign = -1

        def step(wall: datetime) -> datetime:
            return fires.at_or_before(wall - timedelta(minutes=1))

        def beyond(instant: datetime) -> bool:
            return instant <= moment

    quick = (fires.after(wall) if forward else fires.at_or_before(wall)).replace(tzinfo=zone).astimezone(UTC)
    if beyond(quick) and _steady(zone, moment) and _steady(zone, quick):
        return quick  # no clock change near either end: the wall clock maps one to one
    fixed = _fixed_time(expression)
    # Backward, a minute beyond the window, since each step looks strictly before its start.
    candidate = wall + _DST_WINDOW + timedelta(minutes=1) if sign < 0 else wall - _DST_WINDOW
    best: datetime | None = None
    best_wall = wall
    while True:
        candidate = step(candidate)
        if best is not None and sign * (candidate - best_wall) > _DST_WINDOW:
            return best
        for instant in _instants(candidate, zone, fixed):
            if beyond(instant) and (best is None or sign * (instant - best).total_seconds() < 0):
                best, best_wall = instant, candidate


def next_fire_time(trigger: TimeTrigger, after: datetime) -> datetime:
    """The trigger's first fire time strictly after ``after``, in UTC."""
    return _nearest(trigger, after, forward=True)


def previous_fire_time(trigger: TimeTrigger, moment: datetime) -> datetime:
    """The trigger's last fire time at or before ``moment``, in UTC."""
    return _nearest(trigger, moment, forward=False)


# -- fire times on the wall clock -----------------------------------------------------------------
#
# croniter costs a third of a millisecond per object (it parses the expression with regular
# expressions each time) and as much again per step: too much for a scheduler that computes the
# next fire of 10,000 scenarios at start. An expression is therefore expanded once (by croniter,
# so that its reading of the fields is the one used) into sorted field values, and fire times are
# found by walking days, hours and minutes. Expressions this does not cover (``L``, ``#``) keep
# croniter.

#: The longest a search walks: a day of month that only a leap year has (the 29th of February
#: falls 8 years apart across 2100).
_SEARCH_DAYS = 8 * 366 + 1


class _Walked:
    """The fire times of a five-field expression, from its expanded fields."""

    def __init__(
        self,
        minutes: list[int],
        hours: list[int],
        days: set[int] | None,
        months: set[int] | None,
        weekdays: set[int] | None,
    ) -> None:
        self.minutes, self.hours = minutes, hours
        self.days, self.months, self.weekdays = days, months, weekdays

    def _fires_on(self, day: date) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        on_day = self.days is None or day.day in self.days
        on_weekday = self.weekdays is None or day.isoweekday() % 7 in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return on_day or on_weekday  # as cron: either field, when both are restricted
        return on_day and on_weekday

    def after(self, wall: datetime) -> datetime:
        """The first fire time strictly after ``wall``."""
        start = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day, hour, minute = start.date(), start.hour, start.minute
        for _ in range(_SEARCH_DAYS):
            if self._fires_on(day):
                at = bisect_left(self.hours, hour)
                if at < len(self.hours):
                    found_hour = self.hours[at]
                    found_minute = bisect_left(self.minutes, minute) if found_hour == hour else 0
                    if found_minute < len(self.minutes):
                        return datetime.combine(day, dtime(found_hour, self.minutes[found_minute]))
                    if at + 1 < len(self.hours):
                        return datetime.combine(day, dtime(self.hours[at + 1], self.minutes[0]))
            day, hour, minute = day + timedelta(days=1), 0, 0
        raise CroniterError("no fire time matches the expression")

    def at_or_before(self, wall: datetime) -> datetime:
        """The last fire time at or before ``wall``."""
        day, hour, minute = wall.date(), wall.hour, wall.minute
        for _ in range(_SEARCH_DAYS):
            if self._fires_on(day):
                at = bisect_right(self.hours, hour) - 1
                if at >= 0:
                    found_hour = self.hours[at]
                    found_minute = (
                        bisect_right(self.minutes, minute) - 1 if found_hour == hour else len(self.minutes) - 1
                    )
                    if found_minute >= 0:
                        return datetime.combine(day, dtime(found_hour, self.minutes[found_minute]))
                    if at >= 1:
                        return datetime.combine(day, dtime(self.hours[at - 1], self.minutes[-1]))
            day, hour, minute = day - timedelta(days=1), 23, 59
        raise CroniterError("no fire time matches the expression")


class _Croniter:
    """The fire times of an expression the walk does not cover, through croniter."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def after(self, wall: datetime) -> datetime:
        found: datetime = croniter(self.expression, wall).get_next(datetime)
        return found

    def at_or_before(self, wall: datetime) -> datetime:
        found: datetime = croniter(self.expression, wall + timedelta(seconds=1)).get_prev(datetime)
        return found


#: The values of the five fields, as croniter reads them (a weekday 7 is Sunday, 0).
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_PLAIN_PART = re.compile(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?")


def _plain_fields(expression: str) -> list[list[int] | None] | None:
    """The five fields' values (``None``: any) of an expression of numbers, ranges, steps and lists,
    read as croniter reads them; ``None`` for anything else (names, macros, ``L``, ``#``), which is
    left to croniter. croniter's ``expand`` costs a third of a millisecond: too much for thousands
    of distinct expressions."""
    fields = expression.split()
    if len(fields) != 5:
        return None
    expanded: list[list[int] | None] = []
    for index, (field, (low, high)) in enumerate(zip(fields, _FIELD_RANGES, strict=True)):
        if field == "*":
            expanded.append(None)
            continue
        top = 7 if index == 4 else high
        values: set[int] = set()
        for part in field.split(","):
            match = _PLAIN_PART.fullmatch(part)
            if match is None or part == "*":
                return None
            first, last, step = match[1], match[2], int(match[3] or 1)
            if first == "*":
                if last is not None:
                    return None
                start, end = low, high
            else:
                start = int(first)
                end = int(last) if last is not None else (high if match[3] else start)
            if step < 1 or not low <= start <= top or not low <= end <= top or start > end:
                return None
            if last is not None and start == end:
                return None  # croniter reads an equal range as the whole cycle; check_cron refuses it
            values.update(0 if index == 4 and value == 7 else value for value in range(start, end + 1, step))
        expanded.append(sorted(values))
    # croniter's reading of a field holding every value: any, except a day of month or weekday
    # whose other field holds no '*' (then both are restricted and either matches).
    for index, (low, high) in enumerate(_FIELD_RANGES):
        if len(expanded[index] or ()) == high - low + 1 and not (index in (2, 4) and "*" not in fields[6 - index]):
            expanded[index] = None
    return expanded


@lru_cache(maxsize=16384)
def wall_schedule(expression: str) -> _Walked | _Croniter:
    """The fire times of ``expression`` on naive wall-clock time: ``after(wall)``, ``at_or_before(wall)``."""
    plain = _plain_fields(expression)
    if plain is None:
        fields, nth_weekdays = croniter.expand(expression)  # six or seven: a definition stored before the rule
        if (
            nth_weekdays
            or len(fields) != 5
            or any(not isinstance(value, int) for field in fields for value in field if value != "*")
        ):
            return _Croniter(expression)
        plain = [None if field == ["*"] else sorted(field) for field in fields]
    minutes, hours, days, months, weekdays = plain
    return _Walked(
        minutes or list(range(60)),
        hours or list(range(24)),
        None if days is None else set(days),
        None if months is None else set(months),
        None if weekdays is None else set(weekdays),
    )
