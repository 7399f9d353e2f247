"""The store's tables. Only the service modules touch these rows; they never leave them.

Constraint names follow one naming convention so that migrations are identical on SQLite and
PostgreSQL. The schema itself is owned by Alembic (``himalia/store/alembic``); this module must agree
with the latest revision, which ``tests/test_store.py`` checks.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from himalia.wire.scenarios import StepState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    profile: Mapped[str] = mapped_column(String(20), default="analyst")
    kind: Mapped[str] = mapped_column(String(20), default="user")
    #: ``hub``: created and kept in step by the JupyterHub sync; ``local``: managed here.
    source: Mapped[str] = mapped_column(String(20), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The last time the person signed in or used a token (kept to the minute, as tokens' ``last_used_at``).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Who deactivated the account: the JupyterHub sync reactivates only the people it deactivated itself.
    deactivated_by: Mapped[str | None] = mapped_column(String(100))

    groups: Mapped[list["Group"]] = relationship(
        secondary="group_members", back_populates="members", order_by="Group.name"
    )


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: ``hub``: its members are the JupyterHub group's (the identity provider's); ``local``: managed here.
    source: Mapped[str] = mapped_column(String(20), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary="group_members", back_populates="groups", order_by="User.login"
    )
    permissions: Mapped[list["GroupPermission"]] = relationship(
        cascade="all, delete-orphan", order_by="GroupPermission.permission"
    )


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class GroupPermission(Base):
    __tablename__ = "group_permissions"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(40), primary_key=True)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship()


class ProjectGrant(Base):
    """One permission granted on one project to one group or one user."""

    __tablename__ = "project_grants"
    __table_args__ = (
        CheckConstraint("(group_id IS NULL) <> (user_id IS NULL)", name="one_principal"),
        Index("uq_project_grants_group", "project_id", "group_id", "permission", unique=True),
        Index("uq_project_grants_user", "project_id", "user_id", "permission", unique=True),
        Index("ix_project_grants_group_id", "group_id"),
        Index("ix_project_grants_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    permission: Mapped[str] = mapped_column(String(40))


class Connection(Base):
    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Fernet token of the JSON secrets object; never readable without the instance key.
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)
    credentials_mode: Mapped[str] = mapped_column(String(20), default="shared")
    allow_write: Mapped[bool] = mapped_column(Boolean, default=False)
    usable_by_everyone: Mapped[bool] = mapped_column(Boolean, default=False)
    details_readable_by: Mapped[str] = mapped_column(String(20), default="nobody")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship()
    group_access: Mapped[list["ConnectionGroupAccess"]] = relationship(cascade="all, delete-orphan")


class ConnectionGroupAccess(Base):
    """A group that may use a connection (``use``) or read its details (``read_details``)."""

    __tablename__ = "connection_group_access"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    access: Mapped[str] = mapped_column(String(20), primary_key=True)

    group: Mapped[Group] = relationship()


class ConnectionCredential(Base):
    """A user's own secrets for a ``per_user`` connection."""

    __tablename__ = "connection_credentials"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secrets_ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InstanceSetting(Base):
    """Instance-wide JSON settings by name (the instance variables live here)."""

    __tablename__ = "instance_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    project: Mapped[Project | None] = relationship()


class AuditEntry(Base):
    """One link of the append-only, hash-chained audit trail."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(200))
    project_key: Mapped[str | None] = mapped_column(String(40), index=True)
    client_address: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last link of the chain: a lock point for appenders and a witness against truncation."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    #: HMAC of ``seq`` and ``hash`` with the audit key, so that the head cannot be reset to an
    #: earlier entry without the key; empty on a store last written before revision 0005.
    seal: Mapped[str | None] = mapped_column(String(64))


class Dataset(Base):
    """A table, a query or files of a connection, as a project sees them."""

    __tablename__ = "datasets"
    __table_args__ = (Index("uq_datasets_project_name", "project_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    #: table and db_schema, or query, or path and format, by kind.
    location: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    columns: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    schema_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probes: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: [{"name", "sql"} | {"name", "python"}]: metrics beyond the built-in probes.
    custom_metrics: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    auto_compute_after_build: Mapped[bool] = mapped_column(Boolean, default=False)
    #: {"column": name or None (files: newest modification time), "max_age": duration}: how old its data may be.
    freshness: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: [{"name", "column", and one rule}]: rules on rows, counted by the invalid_* probes (wire.data.RowCondition).
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    connection: Mapped[Connection] = relationship()
    project: Mapped[Project] = relationship()


class MetricValue(Base):
    """One value of one metric at one time: the history the API serves as a time series."""

    __tablename__ = "metric_values"
    __table_args__ = (Index("ix_metric_values_series", "project_id", "dataset_id", "metric", "computed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(200))
    value: Mapped[Any] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    origin: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100))


class Check(Base):
    __tablename__ = "checks"
    __table_args__ = (Index("uq_checks_dataset_name", "dataset_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(30))
    metric: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    dataset: Mapped[Dataset] = relationship()


class CheckResult(Base):
    """One evaluation of one check, with the value it judged."""

    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_check_time", "check_id", "evaluated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(10))
    value: Mapped[Any] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    origin: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[str | None] = mapped_column(String(64))
    #: {"condition", "columns", "rows"}: a bounded sample of the rows that broke a row condition.
    failing_rows: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    check: Mapped[Check] = relationship()


class NotebookSnapshot(Base):
    """A notebook as it was when a scenario was saved, addressed by the SHA-256 of its content."""

    __tablename__ = "notebook_snapshots"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    #: The parameters cell as papermill reads it: [{"name", "type", "default", "help"}].
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProjectFileBlob(Base):
    """One file's bytes as a scenario saved them, addressed by their SHA-256, stored once for all trees."""

    __tablename__ = "project_file_blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FileTree(Base):
    """The project files a scenario's notebooks run beside, addressed by the SHA-256 of its entries."""

    __tablename__ = "file_trees"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``[[path, blob digest, size], ...]`` sorted by path; paths are relative, ``/``-separated.
    entries: Mapped[list[list[Any]]] = mapped_column(JSON)
    file_count: Mapped[int] = mapped_column(Integer)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Scenario(Base):
    __tablename__ = "scenarios"
    __table_args__ = (Index("uq_scenarios_project_slug", "project_id", "slug", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    #: The id people write in YAML and URLs.
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The ``ScenarioDefinition`` as JSON.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Notebook path -> snapshot digest, taken when the scenario was saved.
    notebooks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: The ``FileTree`` digest of the project files its notebooks run beside, taken when it was saved.
    file_tree: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    run_as_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    #: What polling triggers last saw, by trigger position (fingerprints, pending changes).
    trigger_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship()
    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    run_as: Mapped[User] = relationship(foreign_keys=[run_as_id])
    updated_by: Mapped[User] = relationship(foreign_keys=[updated_by_id])


class ScenarioRun(Base):
    """One run of a scenario, with the definition and notebook snapshots it used, frozen."""

    __tablename__ = "scenario_runs"
    __table_args__ = (
        Index("ix_scenario_runs_scenario", "scenario_id", "id"),
        Index("ix_scenario_runs_state", "state"),
        Index("ix_scenario_runs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(30))
    trigger_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Unique per automatic firing (a cron time, a seen change), so that it yields at most one run.
    fire_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    run_as_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    notebooks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: The ``FileTree`` digest its notebook steps ran beside; a re-run uses the same one.
    file_tree: Mapped[str | None] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Re-runs from a failed step start there, with the variables the earlier run had set.
    start_step: Mapped[int] = mapped_column(Integer, default=0)
    rerun_of: Mapped[int | None] = mapped_column(Integer)
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")
    #: The control plane process running it ("host:pid"), and when it last said so.
    worker: Mapped[str | None] = mapped_column(String(300))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The short-lived API token the run's kernels use; deleted when the run ends.
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True)
    deliveries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: [{"dataset", "schema_digest", "read_by", "rows"}]: the datasets it read (``data.lineage``).
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Kept whatever retention says (a baseline people compare against).
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When retention purged its artifacts and log (its record stays); its snapshots may be gone too.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    scenario: Mapped[Scenario] = relationship()
    run_as: Mapped[User] = relationship()
    steps: Mapped[list["RunStep"]] = relationship(cascade="all, delete-orphan", order_by="RunStep.position")


class RunStep(Base):
    __tablename__ = "run_steps"

    run_id: Mapped[int] = mapped_column(ForeignKey("scenario_runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20), default=StepState.PENDING)
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: What the step produced: check results, metric values, variables set, rows affected.
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunArtifact(Base):
    """A file a step of a run produced: its executed notebook (``ipynb``), its HTML report (``html``)."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[int] = mapped_column(ForeignKey("scenario_runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunLogChunk(Base):
    """Lines of a run's log, appended as they come so that the log can be followed live."""

    __tablename__ = "run_log_chunks"
    __table_args__ = (Index("ix_run_log_chunks_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("scenario_runs.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tier(Base):
    """A hardware tier; its settings are a validated ``TierSpec`` document."""

    __tablename__ = "tiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    allowed_groups: Mapped[list[Group]] = relationship(secondary="tier_groups", order_by="Group.name")


class TierGroup(Base):
    """A group allowed to use a tier; a tier without any is open to everyone."""

    __tablename__ = "tier_groups"

    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)


class TierUsage(Base):
    """Who used which tier from when to when: a workspace server or a scenario run (open while ``ended_at`` is null)."""

    __tablename__ = "tier_usage"
    __table_args__ = (
        Index("ix_tier_usage_open", "tier_id", "ended_at"),
        Index("ix_tier_usage_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id"))
    kind: Mapped[str] = mapped_column(String(20))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("scenario_runs.id", ondelete="SET NULL"))
    #: A run's project, or the project a server was started for; usage and budgets count it there.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    cost_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    tier: Mapped[Tier] = relationship()


class Bundle(Base):
    """One immutable version of a project's definitions: the signed file itself and its manifest.

    Keyed by the project's key, not its row: a bundle imported for a project this instance does
    not have yet is stored before its first activation creates the project.
    """

    __tablename__ = "bundles"
    __table_args__ = (Index("uq_bundles_project_version", "project_key", "version", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_key: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of ``content``, the file as downloaded.
    digest: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    #: ``created`` here or ``imported`` from another instance.
    origin: Mapped[str] = mapped_column(String(20))
    #: The name this instance trusts the signer's key under (``this instance`` for its own).
    signer: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The connection names the import mapped (bundle's name -> this instance's).
    connection_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class BundleActivation(Base):
    """A bundle version made live on its project, by whom and with which changes; the newest is active."""

    __tablename__ = "bundle_activations"
    __table_args__ = (Index("ix_bundle_activations_project", "project_key", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_key: Mapped[str] = mapped_column(String(40))
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id", ondelete="CASCADE"))
    activated_by: Mapped[str] = mapped_column(String(100))
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: [{"kind", "name", "change"}]: what the activation changed.
    changes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)

    bundle: Mapped[Bundle] = relationship()


class TrustedSigningKey(Base):
    """An Ed25519 public key whose bundles this instance imports (``himalia bundle trust``)."""

    __tablename__ = "trusted_signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    public_key: Mapped[str] = mapped_column(String(100), unique=True)
    added_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchedulerUptime(Base):
    """One scheduler's life: when it started and when it last said it was alive.

    The board tells a fire missed while no scheduler ran (the control plane was down) from one
    missed while it ran, by the fire time falling outside every interval.
    """

    __tablename__ = "scheduler_uptime"
    __table_args__ = (Index("ix_scheduler_uptime_beat_at", "beat_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The control plane process ("host:pid").
    process: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadlineAlert(Base):
    """One deadline occurrence that was not met (or a fire that was missed): raised once, cleared once.

    ``occurrence`` names it within its scenario and kind (the deadline's instant, the run, the fire
    time), so that an alert is sent at most once however often the scheduler looks.
    """

    __tablename__ = "deadline_alerts"
    __table_args__ = (
        Index("uq_deadline_alerts_occurrence", "scenario_id", "kind", "occurrence", unique=True),
        Index("ix_deadline_alerts_project", "project_id", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    #: ``late`` (no successful run by the deadline), ``overrun`` (a run beyond its maximum duration), ``missed``.
    kind: Mapped[str] = mapped_column(String(20))
    occurrence: Mapped[str] = mapped_column(String(100))
    #: The deadline (or the fire time) it is about, in UTC.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("scenario_runs.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(Text, default="")
    deliveries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When a successful run (or the run's end) settled it; ``None`` while it stands.
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_by_run: Mapped[int | None] = mapped_column(Integer)


class Budget(Base):
    """A monthly spending limit for a project or a group, in the instance's currency (Domino's budgets)."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint("(project_id IS NULL) <> (group_id IS NULL)", name="one_subject"),
        Index("uq_budgets_project", "project_id", unique=True),
        Index("uq_budgets_group", "group_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    amount: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    project: Mapped["Project | None"] = relationship()
    group: Mapped[Group | None] = relationship()


class BudgetAlert(Base):
    """A budget's threshold (75 or 100 %) crossed in a month: raised and mailed once per month and threshold."""

    __tablename__ = "budget_alerts"
    __table_args__ = (Index("uq_budget_alerts_occurrence", "budget_id", "period", "threshold", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    #: The month, ``YYYY-MM`` in UTC.
    period: Mapped[str] = mapped_column(String(7))
    threshold: Mapped[int] = mapped_column(Integer)
    spent: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    deliveries: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
