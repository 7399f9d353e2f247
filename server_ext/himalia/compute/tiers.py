"""Hardware tiers: what a workspace or a run gets, who may choose it, how many run at once, and usage.

Tiers live in the store so that administrators change them (API, CLI) without redeploying the
hub; the hub asks which tiers a user may choose when it renders the spawn form, and asks again
(``start_server``) when a server starts, so a tier refused in the form cannot be had through the
hub's REST API either. Every start opens a usage record that the stop closes: who used what, on
which tier, from when to when, at which cost per hour.

Scenario runs are held to the same rules: a scenario's ``tier`` must exist and be allowed to its
run-as user when the scenario is saved and again when each run starts (tiers and group
memberships change in between), and every run on a tier opens a usage record that its end, or
the recovery of its control plane, closes.
"""

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from himalia.compute.spawn_form import spawn_form
from himalia.compute.usage import project_labels
from himalia.core.documents import DocumentError, load_document
from himalia.core.errors import Conflict, Forbidden, HimaliaError, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.identity.caller import Caller, load_caller
from himalia.identity.projects import project_permissions
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import find_groups, find_user
from himalia.store.db import Database, paginate
from himalia.store.orm import Group, GroupMember, Project, ScenarioRun, Tier, TierUsage, User
from himalia.wire.common import Page, TierName, from_row
from himalia.wire.compute import DescribeTier, DescribeUsage, SpawnFormPreview, StartServer, TierSpec

_TIER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Columns or relations of a tier row; the rest of a ``TierSpec`` is kept as its JSON document.
_STORED_APART = {"allowed_groups", "default", "archived"}


class TiersFile(BaseModel):
    """``hub_config/tiers.yaml``: the tiers a new control plane starts with, by name."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[TierName, TierSpec]


class TiersFileError(HimaliaError):
    status = 400


def load_tiers_file(path: Path) -> dict[str, TierSpec]:
    """The tiers of a YAML file; errors name the file, the line and the field."""
    try:
        return load_document(path.read_text(), TiersFile, str(path)).tiers
    except DocumentError as error:
        raise TiersFileError(error.message, field=error.field) from None


def _describe(tier: Tier, currency: str, running: dict[str, int] | None = None) -> DescribeTier:
    """The tier as the API shows it; ``running`` counts its open usage records by kind."""
    running = running or {}
    return DescribeTier.model_validate(
        {
            **tier.spec,
            "currency": currency,
            "name": tier.name,
            "allowed_groups": [g.name for g in tier.allowed_groups] or None,
            "default": tier.is_default,
            "archived": tier.archived,
            "updated_at": tier.updated_at,
            "running_servers": running.get("server", 0),
            "running_runs": running.get("run", 0),
        }
    )


def _describe_usage(usage: TierUsage, project: str | None = None) -> DescribeUsage:
    return from_row(DescribeUsage, usage, user=usage.user.login, tier=usage.tier.name, project=project)


def _find_tier(session: Session, name: str, field: str = "tier") -> Tier:
    tier = session.scalar(select(Tier).where(Tier.name == name).options(selectinload(Tier.allowed_groups)))
    if tier is None:
        raise NotFound(f"There is no tier '{name}'.", field=field)
    return tier


def _in_form_order(tiers: list[DescribeTier]) -> list[DescribeTier]:
    """Cheapest first, then smallest: the order of the spawn form and of every tier list."""
    return sorted(tiers, key=lambda t: (t.cost_per_hour, t.cpu_request, t.name))


def _may_use(tier: Tier, group_ids: set[int]) -> bool:
    return not tier.archived and (not tier.allowed_groups or any(g.id in group_ids for g in tier.allowed_groups))


def _group_ids(session: Session, user: User) -> set[int]:
    return set(session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user.id)))


def admit_tier(session: Session, user: User, name: str | None) -> Tier | None:
    """The tier a scenario running as ``user`` gets; None when the scenario names none.

    Refused (naming the field ``tier``) when the tier does not exist (400), is archived or is
    reserved to groups ``user`` is not in (403): a run must not get hardware its run-as user could
    not choose, nor run unsized and unrecorded under a name that matches no tier.
    """
    if not name:
        return None
    tier = session.scalar(select(Tier).where(Tier.name == name).options(selectinload(Tier.allowed_groups)))
    if tier is None:
        raise InvalidInput(f"tier: there is no tier '{name}'.", field="tier")
    if tier.archived:
        raise Forbidden(f"tier: the tier '{name}' is archived.", field="tier")
    if not _may_use(tier, _group_ids(session, user)):
        groups = ", ".join(sorted(g.name for g in tier.allowed_groups))
        raise Forbidden(
            f"tier: the tier '{name}' is not available to {user.login}: it is reserved for the groups {groups}.",
            field="tier",
        )
    return tier


def end_run_usage(session: Session, run_ids: Iterable[int]) -> None:
    """Close the open usage records of these runs (ended, or failed by a recovery)."""
    ids = list(run_ids)
    if ids:
        session.execute(
            update(TierUsage)
            .where(TierUsage.run_id.in_(ids), TierUsage.ended_at.is_(None))
            .values(ended_at=datetime.now(UTC))
        )


def _server_project(session: Session, user: User, key: str) -> int:
    """The project a server is started for: one its person may read (its usage is counted there)."""
    project = session.scalar(select(Project).where(Project.key == key))
    if project is None:
        raise NotFound(f"There is no project '{key}'.", field="project")
    if ProjectPermission.READ_CONTENT not in project_permissions(session, load_caller(session, user), project):
        raise Forbidden(
            f"{user.login} may not read the project '{key}': a server is started only for a project its person reads.",
            field="project",
        )
    return project.id


class TierService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: logging.Logger, currency: str = "USD") -> None:
        super().__init__(db, audit, log)
        #: The currency of every ``cost_per_hour`` (``ControlPlane.currency``), told with each tier.
        self.currency = currency

    def _running(self, session: Session) -> dict[int, dict[str, int]]:
        """Open usage records per tier and kind (``server``, ``run``), in one statement."""
        running: dict[int, dict[str, int]] = {}
        for tier_id, kind, count in session.execute(
            select(TierUsage.tier_id, TierUsage.kind, func.count())
            .where(TierUsage.ended_at.is_(None))
            .group_by(TierUsage.tier_id, TierUsage.kind)
        ):
            running.setdefault(tier_id, {})[kind] = count
        return running

    def list_tiers(self, caller: Caller, user: str | None = None, include_archived: bool = False) -> list[DescribeTier]:
        """The tiers ``user`` (default: the caller) may choose; tier managers may list everyone's, or all."""
        manager = caller.has(GlobalPermission.MANAGE_TIERS)
        if user is not None and user != caller.login and not manager:
            raise Forbidden("Listing another user's tiers needs the global permission 'manage_tiers'.")
        with self.db.read() as session:
            tiers = session.scalars(select(Tier).options(selectinload(Tier.allowed_groups))).all()
            running = self._running(session)
            if user is None and manager:
                chosen = [t for t in tiers if include_archived or not t.archived]
            else:
                mine = user is None or user == caller.login
                group_ids = set(caller.group_ids) if mine else _group_ids(session, find_user(session, str(user)))
                chosen = [t for t in tiers if _may_use(t, group_ids)]
            described = [_describe(t, self.currency, running.get(t.id)) for t in chosen]
        return _in_form_order(described)

    def get_tier(self, caller: Caller, name: str) -> DescribeTier:
        with self.db.read() as session:
            tier = _find_tier(session, name)
            if not caller.has(GlobalPermission.MANAGE_TIERS) and not _may_use(tier, set(caller.group_ids)):
                raise NotFound(f"There is no tier '{name}'.", field="tier")
            return _describe(tier, self.currency, self._running(session).get(tier.id))

    def spawn_form_preview(self, caller: Caller, group: str | None) -> SpawnFormPreview:
        """The spawn form a member of ``group`` alone (``None``: of no group) would be offered.

        The tiers are chosen by the rule ``start_server`` enforces and rendered by the hub's own
        ``spawn_form``, so a tier manager previews exactly what people will get.
        """
        caller.require(GlobalPermission.MANAGE_TIERS)
        with self.db.read() as session:
            group_ids = {g.id for g in find_groups(session, [group], "group")} if group is not None else set()
            tiers = session.scalars(select(Tier).options(selectinload(Tier.allowed_groups))).all()
            offered = _in_form_order([_describe(t, self.currency) for t in tiers if _may_use(t, group_ids)])
        return SpawnFormPreview(group=group, tiers=[t.name for t in offered], html=spawn_form(offered))

    def tier_named(self, name: str | None) -> DescribeTier | None:
        """The tier of a scenario run (executors size their work from it); None if unnamed or unknown."""
        if not name:
            return None
        with self.db.read() as session:
            tier = session.scalar(select(Tier).where(Tier.name == name).options(selectinload(Tier.allowed_groups)))
            return _describe(tier, self.currency) if tier is not None else None

    def put_tier(self, caller: Caller, name: str, spec: TierSpec) -> DescribeTier:
        """Create or replace a tier; making it the default clears the previous default."""
        caller.require(GlobalPermission.MANAGE_TIERS)
        if not _TIER_NAME.match(name):
            raise InvalidInput(f"'{name}' is not a tier name: lower-case letters, digits and '-'.", field="name")
        with self.db.write() as session:
            tier = self._put(session, caller, name, spec)
            return _describe(tier, self.currency, self._running(session).get(tier.id))

    def _put(self, session: Session, caller: Caller, name: str, spec: TierSpec) -> Tier:
        groups = find_groups(session, spec.allowed_groups, "allowed_groups") if spec.allowed_groups else []
        tier = session.scalar(select(Tier).where(Tier.name == name).options(selectinload(Tier.allowed_groups)))
        before = (
            _describe(tier, self.currency).model_dump(
                mode="json", exclude={"updated_at", "running_servers", "running_runs", "currency"}
            )
            if tier
            else None
        )
        if spec.default and not (tier and tier.is_default):
            session.execute(update(Tier).where(Tier.is_default.is_(True)).values(is_default=False))
        if tier is None:
            tier = Tier(name=name)
            session.add(tier)
        tier.spec = spec.model_dump(mode="json", exclude=_STORED_APART)
        tier.is_default, tier.archived, tier.allowed_groups = spec.default, spec.archived, groups
        session.flush()
        after = spec.model_dump(mode="json")
        changes = (
            {k: {"before": before.get(k), "after": v} for k, v in after.items() if before.get(k) != v}
            if before
            else after
        )
        self.audit.record(session, caller, "tier.update" if before else "tier.create", "tier", name, details=changes)
        return tier

    def seed(self, caller: Caller, tiers: dict[str, TierSpec]) -> list[str]:
        """Create the tiers of a file when the store has none yet; later changes are the store's.

        The groups a tier names are created when missing: on a new hub they arrive from the
        identity provider only as people log in.
        """
        caller.require(GlobalPermission.MANAGE_TIERS)
        with self.db.write() as session:
            if session.scalar(select(func.count()).select_from(Tier)):
                return []
            named = {group for spec in tiers.values() for group in spec.allowed_groups or []}
            existing = set(session.scalars(select(Group.name).where(Group.name.in_(named))))
            for group in sorted(named - existing):
                session.add(Group(name=group, description="Named by a hardware tier."))
                self.audit.record(session, caller, "group.create", "group", group, details={"reason": "tiers seed"})
            session.flush()
            for name, spec in tiers.items():
                self._put(session, caller, name, spec)
            return list(tiers)

    # -- servers and usage ---------------------------------------------------------------------

    def start_server(self, caller: Caller, spec: StartServer) -> DescribeUsage:
        """Admit a server of ``spec.user`` on a tier within its limits, and open its usage record.

        Called by the hub (a tier manager) just before it spawns; the tier row is locked so that
        two starts racing for the last slot cannot both pass.
        """
        caller.require(GlobalPermission.MANAGE_TIERS)
        with self.db.write() as session:
            user = find_user(session, spec.user)
            if not user.active:
                raise Forbidden(f"The account '{user.login}' is deactivated.", field="user")
            project_id = _server_project(session, user, spec.project) if spec.project else None
            if spec.tier is None:
                tier = session.scalar(select(Tier).where(Tier.is_default.is_(True), Tier.archived.is_(False)))
                if tier is None:
                    raise InvalidInput("No tier was chosen and there is no default tier.", field="tier")
            else:
                tier = _find_tier(session, spec.tier)
            session.refresh(tier, with_for_update=True)
            if tier.archived:
                raise Forbidden(f"The tier '{tier.name}' is archived.", field="tier")
            if not _may_use(tier, _group_ids(session, user)):
                groups = ", ".join(g.name for g in tier.allowed_groups)
                raise Forbidden(
                    f"The tier '{tier.name}' is not available to {user.login}: it is reserved for the groups {groups}.",
                    field="tier",
                )
            open_servers = select(func.count()).where(
                TierUsage.tier_id == tier.id, TierUsage.ended_at.is_(None), TierUsage.kind == "server"
            )
            limit = tier.spec.get("max_servers_per_user")
            mine = session.scalar(
                open_servers.where(TierUsage.user_id == user.id, TierUsage.server_name != spec.server_name)
            )
            if limit is not None and (mine or 0) >= limit:
                raise Conflict(
                    f"{user.login} already runs {mine} server(s) on the tier '{tier.name}', "
                    f"its limit per user (max_servers_per_user = {limit}). Stop one first.",
                    field="tier",
                )
            limit = tier.spec.get("max_servers")
            everyone = session.scalar(open_servers)
            if limit is not None and (everyone or 0) >= limit:
                raise Conflict(
                    f"The tier '{tier.name}' already runs {everyone} server(s), its limit for everyone "
                    f"(max_servers = {limit}). Choose another tier or try later.",
                    field="tier",
                )
            now = datetime.now(UTC)
            # A server restarted without a recorded stop (the hub died) closes its old record.
            session.execute(
                update(TierUsage)
                .where(
                    TierUsage.user_id == user.id,
                    TierUsage.server_name == spec.server_name,
                    TierUsage.kind == "server",
                    TierUsage.ended_at.is_(None),
                )
                .values(ended_at=now)
            )
            usage = TierUsage(
                user=user,
                tier=tier,
                kind="server",
                server_name=spec.server_name,
                project_id=project_id,
                cost_per_hour=tier.spec.get("cost_per_hour", 0.0),
                started_at=now,
            )
            session.add(usage)
            session.flush()
            self.audit.record(
                session,
                caller,
                "server.start",
                "user",
                user.login,
                details={"tier": tier.name, "server": spec.server_name, "project": spec.project},
            )
            return _describe_usage(usage, spec.project)

    def stop_server(self, caller: Caller, usage_id: int) -> DescribeUsage:
        """Close a server's usage record (idempotent: a second stop keeps the first end time)."""
        caller.require(GlobalPermission.MANAGE_TIERS)
        with self.db.write() as session:
            usage = session.get(TierUsage, usage_id)
            if usage is None or usage.kind != "server":
                raise NotFound(f"There is no server usage record {usage_id}.")
            if usage.ended_at is None:
                usage.ended_at = datetime.now(UTC)
                self.audit.record(
                    session,
                    caller,
                    "server.stop",
                    "user",
                    usage.user.login,
                    details={"tier": usage.tier.name, "server": usage.server_name},
                )
            return _describe_usage(usage)

    def open_run_usage(self, session: Session, user: User, tier_name: str | None, run_id: int) -> None:
        """Admit a starting run on its tier (``admit_tier``) and record its usage, in the run's own
        transaction; runs on no tier are not recorded."""
        tier = admit_tier(session, user, tier_name)
        if tier is not None:
            cost = tier.spec.get("cost_per_hour", 0.0)
            project_id = session.scalar(select(ScenarioRun.project_id).where(ScenarioRun.id == run_id))
            session.add(
                TierUsage(
                    user_id=user.id, tier=tier, kind="run", run_id=run_id, project_id=project_id, cost_per_hour=cost
                )
            )

    def list_usage(
        self,
        caller: Caller,
        limit: int,
        offset: int,
        user: str | None = None,
        running: bool = False,
        tier: str | None = None,
    ) -> Page[DescribeUsage]:
        """Usage records, newest first: tier managers and administrators see everyone's, others their own;
        a project hidden from the caller is named ``OTHER_PROJECTS``.

        ``tier`` and ``running`` together answer what runs on a tier now (its servers and runs);
        an unknown tier has none.
        """
        if not caller.has(GlobalPermission.MANAGE_TIERS):
            if user not in (None, caller.login):
                raise Forbidden("Another user's usage needs the global permission 'manage_tiers'.")
            user = caller.login
        with self.db.read() as session:
            query = (
                select(TierUsage)
                .options(selectinload(TierUsage.user), selectinload(TierUsage.tier))
                .order_by(TierUsage.started_at.desc(), TierUsage.id.desc())
            )
            if user is not None:
                query = query.where(TierUsage.user_id == find_user(session, user).id)
            if running:
                query = query.where(TierUsage.ended_at.is_(None))
            if tier is not None:  # a join, not a lookup: naming a tier tells nobody whether it exists
                query = query.join(Tier, Tier.id == TierUsage.tier_id).where(Tier.name == tier)
            rows, total = paginate(session, query, limit, offset)
            ids = {u.project_id for u in rows if u.project_id is not None}
            keys = dict(session.execute(select(Project.id, Project.key).where(Project.id.in_(ids))).tuples().all())
            label = project_labels(session, caller)
            items = [_describe_usage(u, label(keys.get(u.project_id) if u.project_id else None)) for u in rows]
            return Page(items=items, total=total, limit=limit, offset=offset)
