"""The API's vocabulary: request and response models, shared by the REST API and the CLI.

Names follow ``CreateX`` / ``UpdateX`` / ``DescribeX``. Requests forbid unknown fields so that a
typo is a 400 naming the field rather than a silently ignored setting.
"""

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .permissions import GlobalPermission, Profile, ProjectPermission

T = TypeVar("T")

Login = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._@-]{0,99}$")]
GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ProjectKey = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")]
ConnectionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Preset = Literal["reader", "launcher", "contributor", "admin"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# -- users and groups -------------------------------------------------------------------------


class CreateUser(Request):
    login: Login
    display_name: ShortText = ""
    email: Annotated[str, StringConstraints(max_length=320)] = ""
    profile: Profile = Profile.ANALYST
    kind: Literal["user", "service"] = "user"
    groups: list[GroupName] = Field(default_factory=list, max_length=1000)


class UpdateUser(Request):
    display_name: ShortText | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    profile: Profile | None = None
    active: bool | None = None


class DescribeUser(BaseModel):
    login: str
    display_name: str
    email: str
    profile: Profile
    kind: str
    active: bool
    groups: list[str]
    created_at: datetime


class DescribeMe(DescribeUser):
    global_permissions: dict[str, bool]
    project_scope: str | None = None


class CreateGroup(Request):
    name: GroupName
    description: LongText = ""
    permissions: list[GlobalPermission] = Field(default_factory=list)


class UpdateGroup(Request):
    description: LongText | None = None
    permissions: list[GlobalPermission] | None = None


class DescribeGroup(BaseModel):
    name: str
    description: str
    permissions: list[GlobalPermission]
    member_count: int
    members: list[str] | None = Field(None, description="Only shown to administrators.")


class GroupMembership(Request):
    user: Login


# -- projects ---------------------------------------------------------------------------------


class CreateProject(Request):
    key: ProjectKey
    name: ShortText = Field(min_length=1)
    description: LongText = ""
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    owner: Login | None = Field(None, description="Defaults to the caller.")


class UpdateProject(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    description: LongText | None = None
    tags: list[Tag] | None = Field(None, max_length=50)
    status: Literal["active", "archived"] | None = None
    owner: Login | None = None


class DescribeProject(BaseModel):
    key: str
    name: str
    description: str
    owner: str
    tags: list[str]
    status: str
    created_at: datetime
    updated_at: datetime
    my_permissions: list[ProjectPermission]


class SetGrant(Request):
    """Grant a preset or explicit permissions to exactly one group or one user."""

    group: GroupName | None = None
    user: Login | None = None
    preset: Preset | None = None
    permissions: list[ProjectPermission] | None = None

    @model_validator(mode="after")
    def _one_principal_one_spec(self) -> "SetGrant":
        if (self.group is None) == (self.user is None):
            raise ValueError("give exactly one of 'group' or 'user'")
        if (self.preset is None) == (self.permissions is None):
            raise ValueError("give exactly one of 'preset' or 'permissions'")
        if self.permissions is not None and not self.permissions:
            raise ValueError("'permissions' is empty: remove the grant instead")
        return self


class DescribeGrant(BaseModel):
    principal_type: Literal["group", "user"]
    principal: str
    permissions: list[ProjectPermission]
    preset: Preset | None


class DescribePreset(BaseModel):
    name: Preset
    description: str
    permissions: list[ProjectPermission]


# -- authorization matrix ---------------------------------------------------------------------


class MatrixRow(BaseModel):
    project: str
    name: str
    permissions: dict[str, bool]


class DescribeAuthMatrix(BaseModel):
    subject_type: Literal["user", "group"]
    subject: str
    global_permissions: dict[str, bool]
    projects: list[MatrixRow]


# -- connections ------------------------------------------------------------------------------

JsonScalar = str | int | float | bool | None


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


# -- variables --------------------------------------------------------------------------------


class Variables(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any]


# -- tokens -----------------------------------------------------------------------------------


class CreateToken(Request):
    user: Login | None = Field(None, description="Defaults to the caller; admins may name another.")
    name: ShortText = ""
    expires_in_days: int | None = Field(None, ge=1, le=3650)
    project: ProjectKey | None = Field(None, description="Restrict the token to one project.")


class DescribeToken(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    project: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class CreatedToken(DescribeToken):
    token: str = Field(description="Shown once; only its hash is stored.")


# -- audit ------------------------------------------------------------------------------------


class DescribeAuditEntry(BaseModel):
    seq: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    project_key: str | None
    client_address: str
    details: dict[str, Any]
    hash: str


class AuditVerification(BaseModel):
    entries: int
    ok: bool
    problems: list[str]


# -- datasets, metrics and checks -------------------------------------------------------------

DatasetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")]
CheckName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MetricValueType = str | int | FiniteFloat | bool | None | list[Any]


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
    can_write: bool = Field(description="I may write it: write_content, and a usable connection that allows writes.")
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


CheckType = Literal["range", "in_set", "freshness", "schema_unchanged", "custom_python"]


class CheckSpec(Request):
    """One check. ``range``: min, max (ERROR) and soft_min, soft_max (WARNING), inclusive, each
    optional; ``in_set``: values; ``freshness``: max_age such as 36h or 2d; ``schema_unchanged``:
    the columns when the check is created; ``custom_python``: ``def check(value, history)``."""

    name: CheckName
    type: CheckType
    metric: MetricName | None = None
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None
    soft_min: FiniteFloat | None = None
    soft_max: FiniteFloat | None = None
    values: list[str | int | float | bool] | None = Field(None, max_length=10_000)
    max_age: Annotated[str, StringConstraints(pattern=r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$")] | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    severity: Literal["error", "warning"] = "error"

    @model_validator(mode="after")
    def _fits_its_type(self) -> "CheckSpec":
        needs = {
            "range": ("metric",),
            "in_set": ("metric", "values"),
            "freshness": ("metric", "max_age"),
            "schema_unchanged": (),
            "custom_python": ("code",),
        }[self.type]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.type} check needs '{name}'")
        if self.max_age is not None:
            from .checks import parse_duration

            parse_duration(self.max_age)
        if self.type == "range" and all(getattr(self, b) is None for b in ("min", "max", "soft_min", "soft_max")):
            raise ValueError("a range check needs at least one of min, max, soft_min, soft_max")
        if self.type == "range":
            for low, high in (("min", "max"), ("soft_min", "soft_max"), ("min", "soft_min"), ("soft_max", "max")):
                lower, upper = getattr(self, low), getattr(self, high)
                if lower is not None and upper is not None and lower > upper:
                    raise ValueError(f"'{low}' is above '{high}'")
        return self

    def params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name", "type", "metric"}, exclude_none=True)


class DescribeCheckResult(BaseModel):
    check: str
    dataset: str
    outcome: Literal["OK", "WARNING", "ERROR", "EMPTY"]
    value: Any
    message: str
    evaluated_at: datetime
    origin: str
    run_id: str | None


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


# -- hardware tiers and usage -----------------------------------------------------------------

TierName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kMGTP]i?|)\s*$")
_MULTIPLIERS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_MULTIPLIERS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def parse_bytes(value: object) -> int | None:
    """Bytes from an integer or a Kubernetes quantity ('512Mi', '4G'); decimal and binary suffixes."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and (match := _QUANTITY.match(value)):
        return int(float(match[1]) * _MULTIPLIERS[match[2]])
    raise ValueError("a memory size is a number of bytes or a quantity such as '512Mi', '4Gi' or '8G'")


Bytes = Annotated[int, BeforeValidator(parse_bytes), Field(ge=0)]


class Toleration(BaseModel):
    """A Kubernetes toleration, so a tier's pods may land on tainted nodes (a GPU pool)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, max_length=253)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class TierSpec(Request):
    """A hardware tier: what a workspace or a scenario run gets, who may choose it, how many at once."""

    display_name: ShortText = Field("", description="Shown in the spawn form; defaults to the name.")
    description: LongText = ""
    cpu_request: float = Field(0.5, gt=0, le=1024, description="Cores guaranteed.")
    cpu_limit: float | None = Field(None, gt=0, le=1024, description="Cores at most; none means no limit.")
    memory_request: Bytes = Field(1 << 30, description="Memory guaranteed: bytes or a quantity ('2Gi').")
    memory_limit: Bytes | None = Field(None, description="Memory at most: bytes or a quantity; none means no limit.")
    gpus: int = Field(0, ge=0, le=64)
    gpu_resource: str = Field("nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$", max_length=253)
    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, description="Node labels the workspace must land on (the node pool)."
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=50)
    shm_size: Bytes | None = Field(None, description="Size of /dev/shm (Kubernetes: a memory-backed volume).")
    cost_per_hour: float = Field(0, ge=0, description="In the instance's currency, for usage reports.")
    allowed_groups: list[GroupName] | None = Field(
        None, min_length=1, max_length=1000, description="Groups whose members may use the tier; none means everyone."
    )
    max_servers_per_user: int | None = Field(None, ge=1, description="Servers one user may run on it at once.")
    max_servers: int | None = Field(None, ge=1, description="Servers everyone together may run on it at once.")
    default: bool = Field(False, description="Preselected in the spawn form; setting it clears the others.")
    archived: bool = Field(False, description="Kept for history and usage, offered to nobody.")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "TierSpec":
        if self.cpu_limit is not None and self.cpu_limit < self.cpu_request:
            raise ValueError("cpu_limit is below cpu_request")
        if self.memory_limit is not None and self.memory_limit < self.memory_request:
            raise ValueError("memory_limit is below memory_request")
        return self


class DescribeTier(TierSpec):
    model_config = ConfigDict(extra="ignore")

    name: TierName
    updated_at: datetime
    running_servers: int = Field(0, description="Servers running on it now.")


class StartServer(Request):
    """What the hub asks before it spawns: may ``user`` start ``server_name`` on ``tier``?"""

    user: Login
    tier: TierName | None = Field(None, description="None picks the user's default tier.")
    server_name: Annotated[str, StringConstraints(max_length=255)] = ""


class DescribeUsage(BaseModel):
    id: int
    user: str
    tier: str
    kind: Literal["server", "run"]
    server_name: str
    run_id: int | None
    cost_per_hour: float
    started_at: datetime
    ended_at: datetime | None
