"""Exporting metric and check histories into a dataset (a table on a writable connection), so that
they can be charted, joined and kept like any other data — Dataiku's "export to dataset"."""

from typing import Any

from sqlalchemy import select

from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from himalia.core.permissions import ProjectPermission
from himalia.data.checks import CheckService
from himalia.data.connections import ConnectionService, can_see
from himalia.data.datasets import DatasetService
from himalia.data.drivers import driver_message, sql_engine
from himalia.data.metrics import MetricService
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database
from himalia.store.orm import Connection
from himalia.wire.data import CreateDataset, DescribeDataset, ExportHistory

#: More rows than this are not exported in one go: filter by dataset first.
EXPORT_LIMIT = 100_000


class ExportService(Service):
    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        log: Any,
        connections: ConnectionService,
        datasets: DatasetService,
        metrics: MetricService,
        checks: CheckService,
    ) -> None:
        super().__init__(db, audit, log)
        self.connections, self.datasets, self.metrics, self.checks = connections, datasets, metrics, checks

    def export_history(self, caller: Caller, key: str, spec: ExportHistory) -> DescribeDataset:
        """Write the history to ``spec.table`` (replacing it) and define or refresh ``spec.dataset`` on it."""
        with self.db.read() as session:
            require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            connection = session.scalar(select(Connection).where(Connection.name == spec.connection))
            if connection is None or not can_see(caller, connection):
                raise InvalidInput(f"There is no connection '{spec.connection}'.", field="connection")
            usable = self.connections.usable(session, caller, connection)
        if usable.type != "sql":
            raise InvalidInput("Histories are exported to SQL connections.", field="connection")
        if not usable.allow_write:
            raise Forbidden(f"The connection '{spec.connection}' does not allow writes.")
        if spec.history == "metrics":
            rows = [v.model_dump() for v in self.metrics.history(caller, key, spec.source, limit=EXPORT_LIMIT)]
        else:
            rows = [r.model_dump() for r in self.checks.history(caller, key, spec.source, limit=EXPORT_LIMIT)]
        if not rows:
            raise InvalidInput(f"There is no {spec.history} history to export yet.", field="history")
        try:
            existing = self.datasets.get_dataset(caller, key, spec.dataset)
        except NotFound:
            existing = None
        if existing is not None and (existing.connection, existing.table) != (spec.connection, spec.table):
            raise Conflict(
                f"The dataset '{spec.dataset}' is not the table {spec.table} of {spec.connection}.", field="dataset"
            )
        import pandas as pd  # only here: importing it costs every command and server start a third of a second

        frame = pd.DataFrame(rows)
        if "value" in frame:
            frame["value"] = frame["value"].map(lambda v: None if v is None else str(v))
        try:
            engine = sql_engine(usable, writable=True)
            try:
                frame.to_sql(spec.table, engine, if_exists="replace", index=False)
            finally:
                engine.dispose()
        except Exception as error:  # the target's fault, whatever the driver raises
            message = driver_message(error, usable.secrets)
            raise InvalidInput(f"Cannot write the table: {message}", field="table") from None
        with self.db.write() as session:
            self.audit.record(
                session,
                caller,
                "history.export",
                "dataset",
                spec.dataset,
                project_key=key,
                details={
                    "history": spec.history,
                    "rows": len(rows),
                    "connection": spec.connection,
                    "table": spec.table,
                },
            )
        if existing is None:
            return self.datasets.create_dataset(
                caller, key, CreateDataset(name=spec.dataset, connection=spec.connection, table=spec.table)
            )
        self.datasets.refresh_schema(caller, key, spec.dataset)
        return self.datasets.get_dataset(caller, key, spec.dataset)
