"""The API's vocabulary for connections, datasets, metrics, checks and their histories."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from himalia.core.patterns import compile_pattern
from himalia.core.units import parse_duration
from himalia.wire.common import (
    CheckName,
    ConnectionName,
    DatasetName,
    FiniteFloat,
    GroupName,
    LongText,
    MetricName,
    MetricValueType,
    Request,
)

# -- connections ------------------------------------------------------------------------------


class AccessSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["nobody", "everyone", "groups"]
    groups: list[GroupName] = Field(default_factory=list, max_length=1000)


class CreateConnection(Request):
    name: ConnectionName
    type: Literal["sql", "files"]
    description: LongText = ""
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Non-secret settings. 'url' is required: a SQLAlchemy URL without password "
        "for 'sql', an fsspec URL for 'files'.",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Encrypted at rest, never returned. For 'sql', 'password' goes into the URL "
        "and the rest into the driver's connect arguments; for 'files', fsspec storage options.",
    )
    credentials_mode: Literal["shared", "per_user"] = "shared"
    allow_write: bool = False
    usable_by: AccessSpec = Field(default_factory=lambda: AccessSpec(mode="nobody"))
    details_readable_by: AccessSpec = Field(default_factory=lambda: AccessSpec(mode="nobody"))


class UpdateConnection(Request):
    description: LongText | None = None
    params: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None
    credentials_mode: Literal["shared", "per_user"] | None = None
    allow_write: bool | None = None
    usable_by: AccessSpec | None = None
    details_readable_by: AccessSpec | None = None


class SetCredentials(Request):
    secrets: dict[str, str]


class DescribeConnection(BaseModel):
    name: str
    type: str
    description: str
    owner: str
    credentials_mode: str
    allow_write: bool
    usable_by: AccessSpec
    details_readable_by: AccessSpec
    can_use: bool
    can_read_details: bool
    can_manage: bool
    params: dict[str, Any] | None = Field(None, description="Only when details are readable.")
    secret_names: list[str] | None = Field(None, description="Only when details are readable.")
    has_my_credentials: bool | None = Field(None, description="For per_user connections.")


class ConnectionCredentials(BaseModel):
    """Everything a kernel needs to reach a connection's data as its caller."""

    name: str
    type: str
    params: dict[str, Any]
    secrets: dict[str, str]
    allow_write: bool


class ConnectionTestResult(BaseModel):
    ok: bool
    message: str
    elapsed_ms: int


class DatasetColumn(BaseModel):
    name: str
    type: str


class CustomMetric(BaseModel):
    """A metric beyond the probes: a SQL query returning one value, or ``def metric(df)``."""

    model_config = ConfigDict(extra="forbid")

    name: MetricName
    sql: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = None
    python: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None

    @model_validator(mode="after")
    def _one_definition(self) -> "CustomMetric":
        if (self.sql is None) == (self.python is None):
            raise ValueError("give exactly one of 'sql' or 'python'")
        return self


Duration = Annotated[str, StringConstraints(pattern=r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$")]


class FreshnessSpec(Request):
    """How old a dataset's data may be: the newest value of ``column`` (a timestamp or date column,
    or ISO text), or for a files dataset without a column the newest modification time of its files.

    Timestamps without a time zone are taken as UTC; a date counts as midnight UTC."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        None, description="Required for table and query datasets; files datasets without it use modification times."
    )
    max_age: Duration = Field(description="A duration such as 26h, 90m or 2d.")

    @field_validator("max_age")
    @classmethod
    def _a_duration(cls, max_age: str) -> str:
        parse_duration(max_age)
        return max_age


ConditionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
#: The rules a row condition may state, one per condition.
CONDITION_RULES = ("range", "pattern", "values", "not_null", "unique")


class RowCondition(Request):
    """A rule each row's value of ``column`` should follow, exactly one of: ``min`` and/or
    ``max`` (inclusive, numbers), ``pattern`` (a regular expression in RE2 syntax, found anywhere
    in the text: anchor it with ``^`` and ``$``), ``values`` (the allowed ones), ``not_null`` or
    ``unique``. A null breaks only ``not_null``; a repeated value breaks ``unique`` once per
    repetition. Its probes ``invalid_count:<name>`` and ``invalid_percent:<name>`` count the rows
    that break it, in the dataset's own aggregate statement."""

    name: ConditionName
    column: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    values: list[str | int | float | bool] | None = Field(None, min_length=1, max_length=10_000)
    not_null: Literal[True] | None = None
    unique: Literal[True] | None = None

    @field_validator("pattern")
    @classmethod
    def _a_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            compile_pattern(pattern)
        return pattern

    def _stated(self) -> list[str]:
        stated = ["range"] if self.min is not None or self.max is not None else []
        return stated + [rule for rule in CONDITION_RULES[1:] if getattr(self, rule) is not None]

    @property
    def rule(self) -> str:
        """Which rule the condition states."""
        return self._stated()[0]

    @model_validator(mode="after")
    def _one_rule(self) -> "RowCondition":
        stated = self._stated()
        if len(stated) != 1:
            rules = "min and/or max, pattern, values, not_null, unique"
            raise ValueError(f"a condition states exactly one rule ({rules}), not {len(stated)}: {stated}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is above 'max'")
        return self


def _named_once(conditions: list[RowCondition] | None) -> list[RowCondition] | None:
    names = [condition.name for condition in conditions or []]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"each condition has a name of its own: {', '.join(repeated)} is given twice")
    return conditions


class CreateDataset(Request):
    """A table (``table``, optional ``db_schema``) or a query (``query``) of a ``sql`` connection,
    or files (``path`` below the connection's URL, globs allowed, and ``format``) of a ``files`` one."""

    name: DatasetName
    connection: ConnectionName
    description: LongText = ""
    table: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    db_schema: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    query: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    path: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    format: Literal["csv", "parquet"] | None = None
    probes: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        default_factory=lambda: ["record_count", "column_count"], max_length=500
    )
    custom_metrics: list[CustomMetric] = Field(default_factory=list, max_length=100)
    auto_compute_after_build: bool = False
    freshness: FreshnessSpec | None = None
    conditions: list[RowCondition] = Field(
        default_factory=list, max_length=100, description="Rules on rows; see RowCondition."
    )

    _conditions_named_once = field_validator("conditions")(_named_once)

    @field_validator("path")
    @classmethod
    def _below_the_root(cls, path: str | None) -> str | None:
        if path is not None and ".." in path.replace("\\", "/").split("/"):
            raise ValueError("a path stays below its connection's root: no '..'")
        return path

    @model_validator(mode="after")
    def _one_location(self) -> "CreateDataset":
        given = [name for name in ("table", "query", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'table', 'query' or 'path'")
        if self.path is None and self.format is not None:
            raise ValueError("'format' goes with 'path'")
        if self.table is None and self.db_schema is not None:
            raise ValueError("'db_schema' goes with 'table'")
        if self.path is not None and self.format is None:
            suffix = self.path.rsplit(".", 1)[-1].lower()
            if suffix not in {"csv", "parquet"}:
                raise ValueError("say the 'format' (csv or parquet) of the files")
            self.format = suffix  # type: ignore[assignment]
        return self


class UpdateDataset(Request):
    description: LongText | None = None
    probes: list[Annotated[str, StringConstraints(max_length=300)]] | None = Field(None, max_length=500)
    custom_metrics: list[CustomMetric] | None = Field(None, max_length=100)
    auto_compute_after_build: bool | None = None
    freshness: FreshnessSpec | None = Field(None, description="Replaces the declared freshness; null removes it.")
    conditions: list[RowCondition] | None = Field(None, max_length=100, description="Replaces the row conditions.")

    _conditions_named_once = field_validator("conditions")(_named_once)


class DescribeDataset(BaseModel):
    name: str
    description: str
    connection: str
    kind: Literal["table", "query", "files"]
    table: str | None = None
    db_schema: str | None = None
    query: str | None = None
    path: str | None = None
    format: str | None = None
    columns: list[DatasetColumn] | None
    schema_refreshed_at: datetime | None
    probes: list[str]
    custom_metrics: list[CustomMetric]
    auto_compute_after_build: bool
    freshness: FreshnessSpec | None = None
    conditions: list[RowCondition] = Field(default_factory=list)
    can_write: bool = Field(description="I may write it: write_content, and a usable connection that allows writes.")
    can_use_connection: bool = Field(
        description="I may use its connection myself; otherwise I read it through …/data (read_content)."
    )
    created_at: datetime
    updated_at: datetime


class DatasetSchema(BaseModel):
    columns: list[DatasetColumn] | None
    refreshed_at: datetime | None
    changes: list[str] = Field(default_factory=list, description="What the last refresh changed, in words.")


class ComputeMetrics(Request):
    probes: list[Annotated[str, StringConstraints(max_length=300)]] | None = Field(
        None, max_length=500, description="Defaults to the dataset's probes and custom metrics."
    )


class ComputedMetrics(BaseModel):
    dataset: str
    computed_at: datetime
    values: dict[str, Any]


class RecordMetric(Request):
    name: MetricName
    value: MetricValueType
    dataset: DatasetName | None = None
    run_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class DescribeMetricValue(BaseModel):
    metric: str
    dataset: str | None
    value: Any
    computed_at: datetime
    origin: str
    run_id: str | None
    actor: str


CheckType = Literal["range", "in_set", "freshness", "schema_unchanged", "change", "anomaly", "custom_python"]
#: The most past values a check on a metric's history reads.
MAX_HISTORY_WINDOW = 1000


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class CheckSpec(Request):
    """One check. ``range``: min, max (ERROR) and soft_min, soft_max (WARNING), inclusive, each
    optional; ``in_set``: values; ``schema_unchanged``: the columns when the check is created;
    ``custom_python``: ``def check(value, history)``.

    ``change``: the metric's change against its value ``compare_to`` computations ago (1: the
    previous one), in ``percent`` of that value or as an ``absolute`` difference, judged by the
    bounds as ``range`` judges a value. ``anomaly``: the value against the band of its last
    ``window`` values, ``k`` standard deviations around their mean (``method: stddev``) or ``k``
    scaled median absolute deviations around their median (``mad``, robust to past outliers):
    outside, ERROR; outside the ``soft_k`` band, WARNING; EMPTY until ``min_history`` values exist.

    ``freshness`` without ``metric`` judges the data: the age of the newest value the dataset's
    declared ``freshness`` names, against its ``max_age`` (beyond it: ``severity``, ERROR by
    default), and beyond the optional ``warn_after`` WARNING. With ``metric`` and ``max_age`` it
    judges, as it always did, how long ago that metric was last computed."""

    name: CheckName
    type: CheckType
    metric: MetricName | None = None
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    soft_min: FiniteFloat | None = None
    soft_max: FiniteFloat | None = None
    values: list[str | int | float | bool] | None = Field(None, max_length=10_000)
    max_age: Duration | None = None
    warn_after: Duration | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    severity: Literal["error", "warning"] = "error"
    change: Literal["percent", "absolute"] | None = None
    compare_to: Annotated[int, Field(ge=1, le=MAX_HISTORY_WINDOW)] | None = None
    method: Literal["stddev", "mad"] | None = None
    k: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    soft_k: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    window: Annotated[int, Field(ge=2, le=MAX_HISTORY_WINDOW)] | None = None
    min_history: Annotated[int, Field(ge=2, le=MAX_HISTORY_WINDOW)] | None = None

    @model_validator(mode="after")
    def _fits_its_type(self) -> "CheckSpec":
        needs = {
            "range": ("metric",),
            "in_set": ("metric", "values"),
            "freshness": ("max_age",) if self.metric is not None else (),
            "schema_unchanged": (),
            "change": ("metric", "change"),
            "anomaly": ("metric",),
            "custom_python": ("code",),
        }[self.type]
        owned = {"change": {"change", "compare_to"}, "anomaly": {"method", "k", "soft_k", "window", "min_history"}}
        for kind, fields in owned.items():
            for name in sorted(fields):
                if getattr(self, name) is not None and self.type != kind:
                    raise ValueError(f"'{name}' goes with {_article(kind)} {kind} check")
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"{_article(self.type)} {self.type} check needs '{name}'")
        for duration in (self.max_age, self.warn_after):
            if duration is not None:
                parse_duration(duration)
        if self.type == "freshness" and self.metric is None and self.max_age is not None:
            raise ValueError(
                "a freshness check of the data takes its 'max_age' from the dataset's freshness; "
                "give 'max_age' only with a 'metric'"
            )
        if self.warn_after is not None and self.type != "freshness":
            raise ValueError("'warn_after' goes with a freshness check")
        if (
            self.warn_after is not None
            and self.max_age is not None
            and parse_duration(self.warn_after) >= parse_duration(self.max_age)
        ):
            raise ValueError("'warn_after' is not below 'max_age'")
        if self.type in ("range", "change") and all(
            getattr(self, b) is None for b in ("min", "max", "soft_min", "soft_max")
        ):
            raise ValueError(
                f"{_article(self.type)} {self.type} check needs at least one of min, max, soft_min, soft_max"
            )
        if self.type == "change" and self.compare_to is None:
            self.compare_to = 1
        if self.type == "anomaly":
            for bound in ("min", "max", "soft_min", "soft_max"):
                if getattr(self, bound) is not None:
                    raise ValueError(f"'{bound}' goes with a range or change check; an anomaly check's band is 'k'")
            self.method, self.k = self.method or "stddev", self.k or 3.0
            self.window, self.min_history = self.window or 20, self.min_history or 5
            if self.soft_k is not None and self.soft_k >= self.k:
                raise ValueError("'soft_k' is not below 'k'")
            if self.min_history > self.window:
                raise ValueError("'min_history' is above 'window'")
        if self.type in ("range", "change"):
            for low, high in (("min", "max"), ("soft_min", "soft_max"), ("min", "soft_min"), ("soft_max", "max")):
                lower, upper = getattr(self, low), getattr(self, high)
                if lower is not None and upper is not None and lower > upper:
                    raise ValueError(f"'{low}' is above '{high}'")
        return self

    def params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name", "type", "metric"}, exclude_none=True)


class FailingRows(BaseModel):
    """A bounded sample of the rows that broke a row condition, taken when its check failed."""

    condition: str
    columns: list[str]
    rows: list[list[Any]]


class DescribeCheckResult(BaseModel):
    check: str
    dataset: str
    outcome: Literal["OK", "WARNING", "ERROR", "EMPTY"]
    value: Any
    message: str
    evaluated_at: datetime
    origin: str
    run_id: str | None
    failing_rows: FailingRows | None = Field(
        None, description="Rows that broke the check's row condition: only for readers of the content (read_content)."
    )


class DescribeCheck(CheckSpec):
    model_config = ConfigDict(extra="ignore")

    dataset: str
    expected_columns: list[DatasetColumn] | None = None
    last_result: DescribeCheckResult | None = None


class CheckRun(BaseModel):
    dataset: str
    outcome: Literal["OK", "WARNING", "ERROR", "EMPTY"]
    results: list[DescribeCheckResult]


class ExportHistory(Request):
    """Export a history into a table of a writable SQL connection, defined as a dataset."""

    history: Literal["metrics", "checks"]
    connection: ConnectionName
    table: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    dataset: DatasetName
    source: DatasetName | None = Field(None, description="Only this dataset's history.")
