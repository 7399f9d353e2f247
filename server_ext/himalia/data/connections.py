"""Data connections: where data lives, who may use it, who may read its details.

Secrets are encrypted with the instance key and never returned by this service: describing a
connection shows secret *names* to those who may read its details, and testing one reports only
an error text scrubbed of every secret value. ``shared`` connections hold one set of secrets;
``per_user`` connections hold each user's own.
"""

import json
import time
from collections.abc import Sequence
from typing import Any

import fsspec
from sqlalchemy import String, cast, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, joinedload, selectinload

from himalia.core.crypto import SecretBox
from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound, ask_for
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.data.access import DataAccessPolicy, is_local_files, one_statement
from himalia.data.drivers import UsableConnection, driver_message, scrub, sql_engine, storage_options
from himalia.identity.caller import Caller
from himalia.identity.projects import projects_granting
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import find_groups
from himalia.store.db import Database
from himalia.store.orm import Connection, ConnectionCredential, ConnectionGroupAccess, Dataset, Group, Scenario
from himalia.wire.common import Page, from_row
from himalia.wire.data import (
    AccessSpec,
    ConnectionCredentials,
    ConnectionTestResult,
    CreateConnection,
    DescribeConnection,
    SetCredentials,
    UpdateConnection,
)

USE, READ_DETAILS = "use", "read_details"


def _groups_with(connection: Connection, access: str) -> list[Group]:
    return sorted((a.group for a in connection.group_access if a.access == access), key=lambda g: g.name)


def _owner_or_admin(caller: Caller, connection: Connection) -> bool:
    return caller.is_admin or connection.owner_id == caller.user_id


def can_manage(caller: Caller, connection: Connection) -> bool:
    """Its owner or an administrator; never through a project-scoped token (connections are global)."""
    return caller.project_scope is None and _owner_or_admin(caller, connection)


def can_use(caller: Caller, connection: Connection) -> bool:
    return (
        _owner_or_admin(caller, connection)
        or connection.usable_by_everyone
        or any(g.id in caller.group_ids for g in _groups_with(connection, USE))
    )


def can_read_details(caller: Caller, connection: Connection) -> bool:
    mode = connection.details_readable_by
    return (
        _owner_or_admin(caller, connection)
        or mode == "everyone"
        or (mode == "groups" and any(g.id in caller.group_ids for g in _groups_with(connection, READ_DETAILS)))
    )


def can_see(caller: Caller, connection: Connection) -> bool:
    return can_use(caller, connection) or can_read_details(caller, connection)


def use_refusal(caller: Caller, connection: Connection, reason: str = "") -> Forbidden:
    """The one refusal to use a connection: who may grant 'use' on it (its owner only if the caller sees it)."""
    owner = [connection.owner.login] if can_see(caller, connection) else []
    grant = ask_for("'use' on it", owner, "its owner")
    return Forbidden(f"{caller.login} may not use the connection '{connection.name}'{reason}: {grant}.")


def _probe(usable: UsableConnection) -> None:
    """Really reach the data; raise whatever the driver raises."""
    params, secrets = usable.params, usable.secrets
    if usable.type == "sql":
        engine = sql_engine(usable)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    elif is_local_files(params["url"]):
        usable.policy.local_files(params["url"], field="params.url")
    else:
        filesystem, path = fsspec.core.url_to_fs(params["url"], **storage_options(params, secrets))
        if not filesystem.exists(path):
            raise FileNotFoundError(f"{params['url']} does not exist")
        filesystem.ls(path) if filesystem.isdir(path) else filesystem.info(path)


#: Who is told a dataset's or a scenario's name in a refusal: whoever may list them in its project.
_SEES_DATASETS = frozenset({ProjectPermission.READ_CONTENT})
_SEES_SCENARIOS = frozenset({ProjectPermission.READ_CONTENT, ProjectPermission.RUN_SCENARIOS})


def _names_connection(definition: dict[str, Any], name: str) -> bool:
    """Whether a scenario definition's SQL step or ``sql_condition`` trigger names the connection."""
    return any(
        part.get("connection") == name for part in [*definition.get("steps", []), *definition.get("triggers", [])]
    )


def _used_by_project(session: Session, connection: Connection, project_id: int) -> bool:
    """Whether a dataset of the project, or a SQL step or trigger of one of its scenarios, names it."""
    dataset = select(Dataset.id).where(Dataset.project_id == project_id, Dataset.connection_id == connection.id)
    if session.scalar(dataset.limit(1)) is not None:
        return True
    definitions = session.scalars(select(Scenario.definition).where(Scenario.project_id == project_id))
    return any(_names_connection(definition, connection.name) for definition in definitions)


def _scenarios_naming(session: Session, connection: Connection) -> list[tuple[int, str]]:
    """(project row, scenario id) of every scenario naming the connection: the store narrows them
    to the definitions whose JSON text holds the quoted name, each definition confirms it."""
    candidates = session.execute(
        select(Scenario.project_id, Scenario.slug, Scenario.definition)
        .where(cast(Scenario.definition, String).contains(json.dumps(connection.name), autoescape=True))
        .order_by(Scenario.slug)
    )
    return [
        (project, slug) for project, slug, definition in candidates if _names_connection(definition, connection.name)
    ]


def _named(
    session: Session, caller: Caller, uses: Sequence[tuple[int, str]], permissions: frozenset[ProjectPermission]
) -> str:
    """``KEY/name`` of the first few uses the caller may see; those of other projects only counted."""
    visible = projects_granting(session, caller, permissions)
    named = sorted(f"{visible[project]}/{name}" for project, name in uses if project in visible)
    unseen = len(uses) - len(named)
    parts = named[:3] + ([f"{len(named) - 3} more"] if len(named) > 3 else [])
    parts += [f"{unseen} in projects you do not see"] if unseen else []
    return ", ".join(parts)


def _refuse_while_used(session: Session, caller: Caller, connection: Connection) -> None:
    """A connection datasets read (their rows refer to it) or scenarios name in a SQL step or
    trigger (they would fail at their next run) cannot go: one sentence saying which."""
    datasets = session.execute(
        select(Dataset.project_id, Dataset.name).where(Dataset.connection_id == connection.id).order_by(Dataset.name)
    ).all()
    scenarios = _scenarios_naming(session, connection)
    uses = []
    if datasets:
        shown = _named(session, caller, [(project, name) for project, name in datasets], _SEES_DATASETS)
        uses.append(f"{len(datasets)} dataset(s) read '{connection.name}' ({shown})")
    if scenarios:
        subject = "it" if datasets else f"'{connection.name}'"
        shown = _named(session, caller, scenarios, _SEES_SCENARIOS)
        uses.append(f"{len(scenarios)} scenario(s) use {subject} in SQL steps or triggers ({shown})")
    if uses:
        raise Conflict(" and ".join(uses) + ": delete them or point them at another connection first.")


class ConnectionService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, box: SecretBox, policy: DataAccessPolicy) -> None:
        super().__init__(db, audit, log)
        self.box = box
        self.policy = policy

    def _validate(self, caller: Caller, kind: str, params: dict[str, Any], allow_write: bool) -> None:
        self.policy.check(
            kind, params, allow_write=allow_write, may_read_local=caller.has(GlobalPermission.WRITE_UNSAFE_CODE)
        )

    def _find(self, session: Session, caller: Caller, name: str) -> Connection:
        connection = session.scalar(
            select(Connection)
            .options(
                joinedload(Connection.owner),
                selectinload(Connection.group_access).joinedload(ConnectionGroupAccess.group),
            )
            .where(Connection.name == name)
        )
        if connection is None or not can_see(caller, connection):
            raise NotFound(f"There is no connection '{name}'.")
        return connection

    def _describe(self, caller: Caller, connection: Connection, has_credentials: bool | None) -> DescribeConnection:
        readable = can_read_details(caller, connection)
        secret_names = None
        if readable and connection.secrets_ciphertext:
            secret_names = sorted(self.box.decrypt(connection.secrets_ciphertext))
        readable_by = connection.details_readable_by
        usable_groups = [g.name for g in _groups_with(connection, USE)]
        return from_row(
            DescribeConnection,
            connection,
            owner=connection.owner.login,
            usable_by=AccessSpec(
                mode="everyone" if connection.usable_by_everyone else "groups" if usable_groups else "nobody",
                groups=usable_groups,
            ),
            details_readable_by=AccessSpec(
                mode=readable_by,
                groups=[g.name for g in _groups_with(connection, READ_DETAILS)],
            ),
            can_use=can_use(caller, connection),
            can_read_details=readable,
            can_manage=can_manage(caller, connection),
            params=dict(connection.params) if readable else None,
            secret_names=(secret_names or []) if readable else None,
            has_my_credentials=has_credentials if connection.credentials_mode == "per_user" else None,
        )

    def _my_credentials(self, session: Session, caller: Caller, ids: list[int]) -> set[int]:
        if caller.user_id is None or not ids:
            return set()
        return set(
            session.scalars(
                select(ConnectionCredential.connection_id).where(
                    ConnectionCredential.user_id == caller.user_id,
                    ConnectionCredential.connection_id.in_(ids),
                )
            )
        )

    def list_connections(self, caller: Caller, limit: int, offset: int) -> Page[DescribeConnection]:
        """Connections the caller may use or read: three statements whatever their number."""
        with self.db.read() as session:
            everything = session.scalars(
                select(Connection)
                .options(
                    joinedload(Connection.owner),
                    selectinload(Connection.group_access).joinedload(ConnectionGroupAccess.group),
                )
                .order_by(Connection.name)
            ).all()
            visible = [c for c in everything if can_see(caller, c)]
            page = visible[offset : offset + limit]
            mine = self._my_credentials(session, caller, [c.id for c in page])
            items = [self._describe(caller, c, c.id in mine) for c in page]
            return Page(items=items, total=len(visible), limit=limit, offset=offset)

    def get_connection(self, caller: Caller, name: str) -> DescribeConnection:
        with self.db.read() as session:
            connection = self._find(session, caller, name)
            return self._describe(caller, connection, bool(self._my_credentials(session, caller, [connection.id])))

    def _apply_access(
        self,
        session: Session,
        connection: Connection,
        usable: AccessSpec | None,
        readable: AccessSpec | None,
    ) -> None:
        if usable is not None:
            if usable.mode != "groups" and usable.groups:
                raise InvalidInput("List groups only with mode 'groups'.", field="usable_by.groups")
            groups = find_groups(session, usable.groups, "usable_by.groups")
            connection.usable_by_everyone = usable.mode == "everyone"
            connection.group_access = [a for a in connection.group_access if a.access != USE] + [
                ConnectionGroupAccess(group=g, access=USE) for g in groups
            ]
        if readable is not None:
            if readable.mode != "groups" and readable.groups:
                raise InvalidInput("List groups only with mode 'groups'.", field="details_readable_by.groups")
            groups = find_groups(session, readable.groups, "details_readable_by.groups")
            connection.details_readable_by = readable.mode
            connection.group_access = [a for a in connection.group_access if a.access != READ_DETAILS] + [
                ConnectionGroupAccess(group=g, access=READ_DETAILS) for g in groups
            ]

    @staticmethod
    def _audit_view(spec: CreateConnection | UpdateConnection) -> dict[str, Any]:
        """What the audit trail keeps of a request: everything but secret values."""
        details = spec.model_dump(mode="json", exclude_none=True, exclude={"secrets"})
        if spec.secrets is not None:
            details["secret_names"] = sorted(spec.secrets)
        return details

    def create_connection(self, caller: Caller, spec: CreateConnection) -> DescribeConnection:
        caller.require(GlobalPermission.CREATE_CONNECTIONS)
        if caller.user_id is None:
            raise InvalidInput("The operator cannot own a connection: create it as a user.", field="owner")
        self._validate(caller, spec.type, spec.params, spec.allow_write)
        if spec.credentials_mode == "per_user" and spec.secrets:
            raise InvalidInput(
                "A per_user connection holds each user's own secrets, not shared ones.",
                field="secrets",
            )
        with self.db.write() as session:
            if session.scalar(select(Connection.id).where(Connection.name == spec.name)) is not None:
                raise Conflict(f"A connection '{spec.name}' already exists.", field="name")
            connection = Connection(
                name=spec.name,
                type=spec.type,
                description=spec.description,
                params=spec.params,
                secrets_ciphertext=self.box.encrypt(spec.secrets) if spec.secrets else None,
                credentials_mode=spec.credentials_mode,
                allow_write=spec.allow_write,
                owner_id=caller.user_id,
                group_access=[],
            )
            self._apply_access(session, connection, spec.usable_by, spec.details_readable_by)
            session.add(connection)
            session.flush()
            self.audit.record(
                session,
                caller,
                "connection.create",
                "connection",
                spec.name,
                details=self._audit_view(spec),
            )
            session.refresh(connection)
            return self._describe(caller, connection, False)

    def update_connection(self, caller: Caller, name: str, spec: UpdateConnection) -> DescribeConnection:
        with self.db.write() as session:
            connection = self._find(session, caller, name)
            if not can_manage(caller, connection):
                raise Forbidden(f"Only the owner of '{name}' or an administrator may change it.")
            mode = spec.credentials_mode or connection.credentials_mode
            if spec.params is not None or spec.allow_write is not None:
                allow_write = connection.allow_write if spec.allow_write is None else spec.allow_write
                self._validate(caller, connection.type, spec.params or dict(connection.params), allow_write)
            if spec.params is not None:
                connection.params = spec.params
            if spec.secrets is not None:
                if mode == "per_user" and spec.secrets:
                    raise InvalidInput("A per_user connection holds each user's own secrets.", field="secrets")
                connection.secrets_ciphertext = self.box.encrypt(spec.secrets) if spec.secrets else None
            elif spec.credentials_mode == "per_user":
                connection.secrets_ciphertext = None
            for attribute in ("description", "credentials_mode", "allow_write"):
                value = getattr(spec, attribute)
                if value is not None:
                    setattr(connection, attribute, value)
            self._apply_access(session, connection, spec.usable_by, spec.details_readable_by)
            session.flush()
            self.audit.record(
                session,
                caller,
                "connection.update",
                "connection",
                name,
                details=self._audit_view(spec),
            )
            return self._describe(caller, connection, bool(self._my_credentials(session, caller, [connection.id])))

    def delete_connection(self, caller: Caller, name: str) -> None:
        with self.db.write() as session:
            connection = self._find(session, caller, name)
            if not can_manage(caller, connection):
                raise Forbidden(f"Only the owner of '{name}' or an administrator may delete it.")
            _refuse_while_used(session, caller, connection)
            session.delete(connection)
            self.audit.record(session, caller, "connection.delete", "connection", name)

    def set_my_credentials(self, caller: Caller, name: str, spec: SetCredentials) -> DescribeConnection:
        with self.db.write() as session:
            connection = self._find(session, caller, name)
            if connection.credentials_mode != "per_user":
                raise InvalidInput(f"'{name}' uses shared credentials.", field="secrets")
            if not can_use(caller, connection) or caller.user_id is None:
                raise use_refusal(caller, connection)
            credential = session.get(ConnectionCredential, (connection.id, caller.user_id))
            if credential is None:
                credential = ConnectionCredential(connection_id=connection.id, user_id=caller.user_id)
                session.add(credential)
            credential.secrets_ciphertext = self.box.encrypt(spec.secrets)
            self.audit.record(
                session,
                caller,
                "connection.set_credentials",
                "connection",
                name,
                details={"secret_names": sorted(spec.secrets)},
            )
            return self._describe(caller, connection, True)

    def _secrets_for(self, session: Session, caller: Caller, connection: Connection) -> dict[str, str]:
        if connection.credentials_mode == "per_user":
            credential = session.get(ConnectionCredential, (connection.id, caller.user_id)) if caller.user_id else None
            if credential is None:
                raise InvalidInput(
                    f"'{connection.name}' needs your own credentials: set them first.",
                    field="secrets",
                )
            return self.box.decrypt(credential.secrets_ciphertext)
        return self.box.decrypt(connection.secrets_ciphertext) if connection.secrets_ciphertext else {}

    def usable(self, session: Session, caller: Caller, connection: Connection) -> UsableConnection:
        """The connection with the caller's secrets, or 403 if the caller may not use it."""
        if not can_use(caller, connection):
            raise use_refusal(caller, connection)
        return self._reach(connection, self._secrets_for(session, caller, connection), connection.allow_write)

    def _reach(self, connection: Connection, secrets: dict[str, str], allow_write: bool) -> UsableConnection:
        # Checked again at every use: the home, the allow-list or the file behind a path may have changed.
        self.policy.check(connection.type, connection.params, allow_write=connection.allow_write, may_read_local=True)
        return UsableConnection(
            name=connection.name,
            type=connection.type,
            params=dict(connection.params),
            secrets=secrets,
            allow_write=allow_write,
            policy=self.policy,
        )

    def usable_for_project_reader(self, session: Session, caller: Caller, connection: Connection) -> UsableConnection:
        """How the control plane reads a project's dataset for someone who may read the project.

        With the caller's own credentials when the caller may use the connection; otherwise with
        the connection's shared ones, which never leave the control plane (Dataiku's project
        readers). A ``per_user`` connection has no shared credentials: only its users read it.
        """
        if can_use(caller, connection):
            return self.usable(session, caller, connection)
        if connection.credentials_mode == "per_user":
            raise use_refusal(caller, connection, " (it reads each user's own credentials)")
        shared = self.box.decrypt(connection.secrets_ciphertext) if connection.secrets_ciphertext else {}
        return self._reach(connection, shared, allow_write=False)

    def read_credentials(self, caller: Caller, name: str) -> ConnectionCredentials:
        """What a kernel needs to reach the data itself, as the caller; every read is audited.

        A project-scoped token (a scenario run's, say) reads only the connections its project uses.
        """
        with self.db.write() as session:
            connection = self._find(session, caller, name)
            if caller.project_scope is not None and not _used_by_project(session, connection, caller.project_scope):
                raise Forbidden(
                    f"This token is limited to one project, which uses no '{name}': its credentials stay closed."
                )
            usable = self.usable(session, caller, connection)
            self.audit.record(
                session,
                caller,
                "connection.read_credentials",
                "connection",
                name,
                details={"secret_names": sorted(usable.secrets)},
            )
        return ConnectionCredentials.model_validate(usable, from_attributes=True)

    def test_connection(self, caller: Caller, name: str) -> ConnectionTestResult:
        """Connect for real, with the caller's credentials; report the driver's error scrubbed of secrets."""
        with self.db.read() as session:
            usable = self.usable(session, caller, self._find(session, caller, name))
        secrets = usable.secrets
        started = time.monotonic()
        try:
            _probe(usable)
            ok, message = True, "Connected."
        except Exception as error:  # any driver error is the answer to "does it work?"
            ok, message = False, scrub(f"{type(error).__name__}: {error}", secrets)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        with self.db.write() as session:
            self.audit.record(
                session,
                caller,
                "connection.test",
                "connection",
                name,
                details={"ok": ok, "message": message},
            )
        return ConnectionTestResult(ok=ok, message=message, elapsed_ms=elapsed_ms)

    def rotate_keys(self, caller: Caller) -> int:
        """Re-encrypt every stored secret with the first configured key; return how many."""
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            count = 0
            for connection in session.scalars(select(Connection).where(Connection.secrets_ciphertext.is_not(None))):
                connection.secrets_ciphertext = self.box.rotate(connection.secrets_ciphertext or "")
                count += 1
            for credential in session.scalars(select(ConnectionCredential)):
                credential.secrets_ciphertext = self.box.rotate(credential.secrets_ciphertext)
                count += 1
            self.audit.record(session, caller, "secrets.rotate", "instance", "secrets", details={"count": count})
            return count

    def query_value(self, caller: Caller, name: str, query: str) -> str:
        """The first row of ``query`` on a sql connection, as JSON (SQL-condition triggers compare it)."""
        with self.db.read() as session:
            connection = session.scalar(
                select(Connection).options(selectinload(Connection.group_access)).where(Connection.name == name)
            )
            if connection is None or not can_see(caller, connection):
                raise NotFound(f"There is no connection '{name}'.")
            usable = self.usable(session, caller, connection)
        if usable.type != "sql":
            raise InvalidInput(f"'{name}' is not a sql connection.", field="connection")
        query = one_statement(query, make_url(usable.params["url"]).get_backend_name(), field="query", query=True)
        engine = sql_engine(usable)
        try:
            with engine.connect() as sql:
                row = sql.execute(text(query.replace(":", "\\:"))).first()
        except Exception as error:
            raise InvalidInput(f"query: {driver_message(error, usable.secrets)}", field="query") from None
        finally:
            engine.dispose()
        return json.dumps(list(row) if row is not None else None, default=str)
