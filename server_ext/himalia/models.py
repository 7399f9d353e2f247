"""The API's vocabulary: request and response models, shared by the REST API and the CLI.

Names follow ``CreateX`` / ``UpdateX`` / ``DescribeX``. Requests forbid unknown fields so that a
typo is a 400 naming the field rather than a silently ignored setting.
"""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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
