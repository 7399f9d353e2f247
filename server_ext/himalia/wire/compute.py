"""The API's vocabulary for hardware tiers and their usage."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from himalia.core.units import parse_bytes
from himalia.wire.common import GroupName, Login, LongText, ProjectKey, Request, ShortText, TierName

# -- hardware tiers and usage -----------------------------------------------------------------

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

    @field_validator("cpu_limit", "memory_limit")
    @classmethod
    def _limit_covers_request(cls, limit: float | None, info: ValidationInfo) -> float | None:
        """A limit below its request is named by the limit's field (the editor marks that field)."""
        field = str(info.field_name)
        request_field = field.replace("_limit", "_request")
        request = info.data.get(request_field)
        if limit is not None and request is not None and limit < request:
            raise ValueError(f"{field} is below {request_field}")
        return limit


class DescribeTier(TierSpec):
    model_config = ConfigDict(extra="ignore")

    name: TierName
    updated_at: datetime
    running_servers: int = Field(0, description="Servers running on it now.")
    running_runs: int = Field(0, description="Scenario runs running on it now.")
    currency: str = Field("USD", description="The currency of cost_per_hour (the control plane's currency setting).")


class StartServer(Request):
    """What the hub asks before it spawns: may ``user`` start ``server_name`` on ``tier``?"""

    user: Login
    tier: TierName | None = Field(None, description="None picks the user's default tier.")
    server_name: Annotated[str, StringConstraints(max_length=255)] = ""
    project: ProjectKey | None = Field(
        None, description="The project the server is started for (one the user may read); its usage counts there."
    )


class DescribeUsage(BaseModel):
    id: int
    user: str
    tier: str
    kind: Literal["server", "run"]
    server_name: str
    run_id: int | None
    project: str | None = Field(None, description="The key of a run's project, or of the project a server is for.")
    cost_per_hour: float
    started_at: datetime
    ended_at: datetime | None


class SpawnFormPreview(BaseModel):
    """The spawn form as a member of one group (and of no other) would see it."""

    group: str | None = Field(description="The group; none means a person in no group.")
    tiers: list[str] = Field(description="The tiers offered, in the form's order.")
    html: str = Field(description="The form's HTML exactly as the hub renders it.")
