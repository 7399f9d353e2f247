"""Datasets: tables, queries and files of a connection, as a project uses them.

Reading a dataset needs ``read_content`` on its project: through the platform (``reading``)
with nothing more, directly (a kernel holding the credentials) with a connection the caller may
use; changing its definition needs ``write_content``. The schema (column names and types) is read
from the source on creation and on demand; each refresh says what changed. A dataset may declare
how old its data may be (``freshness``, see ``himalia.data.freshness``).
"""

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import fsspec
from sqlalchemy import func, select, text
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.orm import Session, joinedload

from himalia.core.errors import Conflict, HimaliaError, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.data.access import one_statement
from himalia.data.connections import ConnectionService, can_see, can_use
from himalia.data.drivers import (
    UsableConnection,
    driver_message,
    duckdb_for,
    files_location,
    files_relation_sql,
    sql_engine,
    sql_source,
    storage_options,
)
from himalia.data.freshness import check_declaration
from himalia.data.lineage import reading_run, record_input
from himalia.data.probes import condition_of, parse_probes
from himalia.data.rules import schema_difference
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database, paginate
from himalia.store.orm import Check, Connection, Dataset, Project, utcnow
from himalia.wire.common import Page, from_row
from himalia.wire.data import (
    CreateDataset,
    DatasetColumn,
    DatasetSchema,
    DescribeDataset,
    RowCondition,
    UpdateDataset,
)

if TYPE_CHECKING:
    import pandas as pd


def location_of(dataset: Dataset) -> dict[str, Any]:
    return dict(dataset.location)


def read_columns(usable: UsableConnection, location: dict[str, Any]) -> list[DatasetColumn]:
    """The source's columns, or ``InvalidInput`` naming the location field that does not work."""
    field = "path" if usable.type == "files" else "query" if "query" in location else "table"
    try:
        if usable.type == "files":
            url = files_location(usable, location["path"])
            with duckdb_for(usable) as connection:
                rows = connection.execute(
                    f"DESCRIBE SELECT * FROM {files_relation_sql(location['format'])}", [url]
                ).fetchall()
            return [DatasetColumn(name=row[0], type=str(row[1])) for row in rows]
        engine = sql_engine(usable)
        try:
            source = sql_source(
                engine, table=location.get("table"), db_schema=location.get("db_schema"), query=location.get("query")
            )
            return [DatasetColumn(name=column.name, type=str(column.type)) for column in source.columns]
        finally:
            engine.dispose()
    except HimaliaError:
        raise
    except NoSuchTableError:
        raise InvalidInput(f"There is no table '{location['table']}' on '{usable.name}'.", field="table") from None
    except Exception as error:  # a driver, a missing driver package or a bad option: the source's fault
        message = driver_message(error, usable.secrets)
        raise InvalidInput(f"Cannot read the {field}: {message}", field=field) from None


def check_probe_columns(
    probes: list[str], columns: list[dict[str, str]] | list[DatasetColumn], conditions: list[RowCondition]
) -> None:
    """Refuse probes of columns or row conditions the dataset does not have, and conditions on
    columns it does not have (their types are checked on computation)."""
    names = {c["name"] if isinstance(c, dict) else c.name for c in columns}
    for condition in conditions:
        if condition.column not in names:
            raise InvalidInput(
                f"condition '{condition.name}': the dataset has no column '{condition.column}'", field="conditions"
            )
    declared = {condition.name for condition in conditions}
    for probe in parse_probes(probes):
        if probe.column is not None and probe.column not in names:
            raise InvalidInput(f"probe '{probe.id}': the dataset has no column '{probe.column}'", field="probes")
        if probe.condition is not None and probe.condition not in declared:
            raise InvalidInput(
                f"probe '{probe.id}': the dataset has no row condition '{probe.condition}'", field="probes"
            )


def describe_dataset(caller: Caller, dataset: Dataset, permissions: frozenset[ProjectPermission]) -> DescribeDataset:
    can_use_connection = can_use(caller, dataset.connection)
    return from_row(
        DescribeDataset,
        dataset,
        connection=dataset.connection.name,
        can_write=ProjectPermission.WRITE_CONTENT in permissions
        and dataset.connection.allow_write
        and can_use_connection,
        can_use_connection=can_use_connection,
        **location_of(dataset),  # table, query or path (and their settings), stored as one JSON object
    )


class DatasetService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, connections: ConnectionService) -> None:
        super().__init__(db, audit, log)
        self.connections = connections

    def find(
        self, session: Session, caller: Caller, key: str, name: str, permission: ProjectPermission
    ) -> tuple[Dataset, frozenset[ProjectPermission]]:
        project, permissions = require_project(session, caller, key, permission)
        dataset = session.scalar(
            select(Dataset)
            .options(joinedload(Dataset.connection).selectinload(Connection.group_access))
            .where(Dataset.project_id == project.id, Dataset.name == name)
        )
        if dataset is None:
            raise NotFound(f"There is no dataset '{name}' in {key}.")
        return dataset, permissions

    def usable(self, session: Session, caller: Caller, dataset: Dataset) -> UsableConnection:
        return self.connections.usable(session, caller, dataset.connection)

    def list_datasets(self, caller: Caller, key: str, limit: int, offset: int) -> Page[DescribeDataset]:
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key, ProjectPermission.READ_CONTENT)
            query = (
                select(Dataset)
                .options(joinedload(Dataset.connection).selectinload(Connection.group_access))
                .where(Dataset.project_id == project.id)
                .order_by(Dataset.name)
            )
            datasets, total = paginate(session, query, limit, offset)
            items = [describe_dataset(caller, d, permissions) for d in datasets]
            return Page(items=items, total=total, limit=limit, offset=offset)

    def get_dataset(self, caller: Caller, key: str, name: str) -> DescribeDataset:
        """The dataset; a run's kernel opening it (``himalia.dataset``) is one of the run's inputs."""
        with self.db.read() as session:
            dataset, permissions = self.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            described = describe_dataset(caller, dataset, permissions)
            for_run = reading_run(session, caller)
        if for_run is not None:
            with self.db.write() as session:
                record_input(session, caller, self.find(session, caller, key, name, ProjectPermission.READ_CONTENT)[0])
        return described

    @staticmethod
    def _check_custom_metrics(caller: Caller, spec: CreateDataset | UpdateDataset) -> None:
        if any(m.python for m in spec.custom_metrics or []):
            caller.require(GlobalPermission.WRITE_UNSAFE_CODE)

    def create_dataset(self, caller: Caller, key: str, spec: CreateDataset) -> DescribeDataset:
        parse_probes(spec.probes)
        self._check_custom_metrics(caller, spec)
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            connection = session.scalar(select(Connection).where(Connection.name == spec.connection))
            if connection is None or not can_see(caller, connection):
                raise InvalidInput(f"There is no connection '{spec.connection}'.", field="connection")
            usable = self.connections.usable(session, caller, connection)
        kind = "table" if spec.table else "query" if spec.query else "files"
        if (kind == "files") != (usable.type == "files"):
            field = "path" if kind == "files" else kind
            raise InvalidInput(f"A {usable.type} connection holds no {kind} datasets.", field=field)
        location = spec.model_dump(include={"table", "db_schema", "query", "path", "format"}, exclude_none=True)
        columns = read_columns(usable, location)
        check_probe_columns(spec.probes, columns, spec.conditions)
        if spec.freshness is not None:
            check_declaration(spec.freshness, kind, [c.model_dump() for c in columns])
        with self.db.write() as session:
            project = session.get_one(Project, project.id)
            if session.scalar(select(Dataset.id).where(Dataset.project_id == project.id, Dataset.name == spec.name)):
                raise Conflict(f"A dataset '{spec.name}' already exists in {key}.", field="name")
            dataset = Dataset(
                project=project,
                name=spec.name,
                description=spec.description,
                connection=session.get_one(Connection, connection.id),
                kind=kind,
                location=location,
                columns=[c.model_dump() for c in columns],
                schema_refreshed_at=utcnow(),
                probes=list(dict.fromkeys(spec.probes)),
                custom_metrics=[m.model_dump(exclude_none=True) for m in spec.custom_metrics],
                auto_compute_after_build=spec.auto_compute_after_build,
                freshness=spec.freshness.model_dump() if spec.freshness else None,
                conditions=[c.model_dump(exclude_none=True) for c in spec.conditions],
            )
            session.add(dataset)
            session.flush()
            self.audit.record(
                session,
                caller,
                "dataset.create",
                "dataset",
                spec.name,
                project_key=key,
                details=spec.model_dump(mode="json", exclude_none=True),
            )
            return describe_dataset(caller, dataset, permissions)

    def update_dataset(self, caller: Caller, key: str, name: str, spec: UpdateDataset) -> DescribeDataset:
        if spec.probes is not None:
            parse_probes(spec.probes)
        self._check_custom_metrics(caller, spec)
        with self.db.write() as session:
            dataset, permissions = self.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            if spec.probes is not None or spec.conditions is not None:
                conditions = (
                    spec.conditions
                    if spec.conditions is not None
                    else [RowCondition.model_validate(c) for c in dataset.conditions]
                )
                probes = spec.probes if spec.probes is not None else dataset.probes
                check_probe_columns(probes, dataset.columns or [], conditions)
                self._keep_counted_conditions(session, dataset, {c.name for c in conditions})
            changes = spec.model_dump(mode="json", exclude_none=True)
            if "freshness" in spec.model_fields_set:  # null removes the declaration
                if spec.freshness is not None:
                    check_declaration(spec.freshness, dataset.kind, dataset.columns)
                changes["freshness"] = spec.freshness.model_dump() if spec.freshness else None
            for attribute, value in changes.items():
                setattr(dataset, attribute, value)
            session.flush()
            self.audit.record(session, caller, "dataset.update", "dataset", name, project_key=key, details=changes)
            return describe_dataset(caller, dataset, permissions)

    @staticmethod
    def _keep_counted_conditions(session: Session, dataset: Dataset, kept: set[str]) -> None:
        """Refuse to drop a row condition that a check counts: the check would judge nothing."""
        for check, metric in session.execute(select(Check.name, Check.metric).where(Check.dataset_id == dataset.id)):
            condition = condition_of(metric)
            if condition is not None and condition not in kept:
                raise Conflict(
                    f"The check '{check}' counts the rows breaking '{condition}': change or delete it first.",
                    field="conditions",
                )

    def delete_dataset(self, caller: Caller, key: str, name: str) -> None:
        with self.db.write() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            session.delete(dataset)
            self.audit.record(session, caller, "dataset.delete", "dataset", name, project_key=key)

    def get_schema(self, caller: Caller, key: str, name: str) -> DatasetSchema:
        with self.db.read() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            columns = [DatasetColumn(**c) for c in dataset.columns] if dataset.columns is not None else None
            return DatasetSchema(columns=columns, refreshed_at=dataset.schema_refreshed_at)

    def refresh_schema(self, caller: Caller, key: str, name: str) -> DatasetSchema:
        """Read the columns from the source again and say what changed."""
        with self.db.read() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            usable = self.usable(session, caller, dataset)
            location, before = location_of(dataset), list(dataset.columns or [])
        columns = read_columns(usable, location)
        after = [c.model_dump() for c in columns]
        changes = schema_difference(before, after)
        with self.db.write() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            dataset.columns = after
            dataset.schema_refreshed_at = utcnow()
            self.audit.record(
                session,
                caller,
                "dataset.refresh_schema",
                "dataset",
                name,
                project_key=key,
                details={"changes": changes},
            )
            return DatasetSchema(columns=columns, refreshed_at=dataset.schema_refreshed_at, changes=changes)

    def read_csv(self, caller: Caller, key: str, name: str, max_bytes: int) -> bytes:
        """The dataset as CSV for an email attachment (``export_datasets``); ``ValueError`` beyond ``max_bytes``."""
        with self.db.read() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.EXPORT_DATASETS)
            usable = self.usable(session, caller, dataset)
            location = dict(dataset.location)
        out = io.BytesIO()
        for frame in _frames(usable, location):
            frame.to_csv(out, index=False, header=out.tell() == 0)
            if out.tell() > max_bytes:
                raise ValueError(f"{name} as CSV is larger than the {max_bytes} bytes allowed")
        return out.getvalue()

    def fingerprint(self, caller: Caller, key: str, name: str, column: str | None, query: str | None) -> str:
        """A cheap sign of change: SQL count and max of ``column`` (or ``query``'s first row), or the
        files' names, sizes and modification times or etags."""
        with self.db.read() as session:
            dataset, _ = self.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            usable = self.usable(session, caller, dataset)
            location = dict(dataset.location)
        try:
            if usable.type == "files":
                keys = ("size", "mtime", "LastModified", "ETag", "etag", "updated")
                located = files_location(usable, location["path"])
                if isinstance(located, list):  # local: the checked real paths
                    local = fsspec.filesystem("file")
                    found = {path: local.info(path) for path in located}
                else:
                    filesystem, path = fsspec.core.url_to_fs(located, **storage_options(usable.params, usable.secrets))
                    found = filesystem.glob(path, detail=True)
                return json.dumps(sorted((p, [str(i.get(k)) for k in keys]) for p, i in found.items()))
            engine = sql_engine(usable)
            try:
                with engine.connect() as connection:
                    if query is not None:
                        backend = connection.dialect.name
                        statement = one_statement(query, backend, field="query", query=True).replace(":", "\\:")
                        row = connection.execute(text(statement)).first()
                    else:
                        source = sql_source(
                            engine,
                            table=location.get("table"),
                            db_schema=location.get("db_schema"),
                            query=location.get("query"),
                        )
                        measures: list[Any] = [func.count()]
                        if column is not None:
                            if column not in source.c:
                                raise InvalidInput(f"column: {name} has no column '{column}'", field="column")
                            measures.append(func.max(source.c[column]))
                        row = connection.execute(select(*measures).select_from(source)).first()
            finally:
                engine.dispose()
        except HimaliaError:
            raise
        except Exception as error:
            raise InvalidInput(f"{name}: {driver_message(error, usable.secrets)}", field="dataset") from None
        return json.dumps(list(row) if row is not None else None, default=str)


def _frames(usable: UsableConnection, location: dict[str, Any]) -> Iterator["pd.DataFrame"]:
    """The dataset in chunks, so that a size limit stops the read early."""
    import pandas as pd

    if usable.type == "files":
        with duckdb_for(usable) as duck:
            relation = duck.execute(
                f"SELECT * FROM {files_relation_sql(location['format'])}", [files_location(usable, location["path"])]
            )
            while not (frame := relation.fetch_df_chunk()).empty:
                yield frame
        return
    engine = sql_engine(usable)
    try:
        source = sql_source(
            engine, table=location.get("table"), db_schema=location.get("db_schema"), query=location.get("query")
        )
        with engine.connect() as connection:
            yield from pd.read_sql(select(source), connection, chunksize=5_000)
    finally:
        engine.dispose()
