"""Metrics: values computed on datasets (probes pushed down to the data, custom SQL and Python)
or recorded from notebooks, kept with their time and origin as a history.

Computing needs ``write_content`` or ``run_scenarios`` on the project and a connection the
caller may use; reading the history needs only ``read_dashboards``, as dashboards show it.
"""

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from himalia.core.errors import HimaliaError, InvalidInput
from himalia.core.permissions import ProjectPermission
from himalia.core.unsafe import run_function
from himalia.data import freshness
from himalia.data.access import DataAccessPolicy, one_statement
from himalia.data.datasets import DatasetService
from himalia.data.drivers import (
    SqlSources,
    UsableConnection,
    driver_message,
    duckdb_for,
    files_location,
    files_relation_sql,
    scrub,
    sql_engine,
    sql_source,
    storage_options,
)
from himalia.data.lineage import record_input
from himalia.data.probes import (
    CONDITION_STATS,
    Probe,
    compute_files,
    compute_sql,
    failing_rows_of_files,
    failing_rows_of_sql,
    parse_probes,
)
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project, require_run_or_write
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database
from himalia.store.orm import Dataset, MetricValue, utcnow
from himalia.wire.common import from_row
from himalia.wire.data import ComputedMetrics, DescribeMetricValue, RecordMetric, RowCondition

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")


def load_frame(usable: dict[str, Any], location: dict[str, Any]) -> "pd.DataFrame":
    """The whole dataset as a DataFrame: only for custom Python metrics, in their child process."""
    import pandas as pd

    protected = usable.pop("protected")
    connection = UsableConnection(**usable, policy=DataAccessPolicy(protected=tuple(protected)))
    if connection.type == "files":
        with duckdb_for(connection) as duck:
            url = files_location(connection, location["path"])
            return duck.execute(f"SELECT * FROM {files_relation_sql(location['format'])}", [url]).df()
    engine = sql_engine(connection)
    try:
        source = sql_source(
            engine, table=location.get("table"), db_schema=location.get("db_schema"), query=location.get("query")
        )
        with engine.connect() as sql:
            return pd.read_sql(select(source), sql)
    finally:
        engine.dispose()


def compute_probes(
    usable: UsableConnection,
    location: dict[str, Any],
    probes: list[Probe],
    sources: SqlSources,
    version: str,
    conditions: list[RowCondition],
) -> dict[str, Any]:
    """Built-in probes, computed by the engine that holds the data; a failing source is the caller's 400.

    A SQL dataset's are one aggregate statement on the kept engine and typed source (``version``:
    the dataset's schema version, so that a refresh reads the columns again)."""
    return _at_the_source(
        usable,
        location,
        sources,
        version,
        "compute on",
        lambda url, fmt, options: compute_files(url, fmt, probes, options, conditions),
        lambda connection, source: compute_sql(connection, source, probes, conditions),
    )


def sample_failing_rows(
    usable: UsableConnection,
    location: dict[str, Any],
    condition: RowCondition,
    limit: int,
    sources: SqlSources,
    version: str,
) -> dict[str, Any]:
    """At most ``limit`` rows that break ``condition``, in one bounded statement where the data lives."""
    return _at_the_source(
        usable,
        location,
        sources,
        version,
        "sample",
        lambda url, fmt, options: failing_rows_of_files(url, fmt, condition, limit, options),
        lambda connection, source: failing_rows_of_sql(connection, source, condition, limit),
    )


def _at_the_source(
    usable: UsableConnection,
    location: dict[str, Any],
    sources: SqlSources,
    version: str,
    verb: str,
    on_files: Callable[[str | list[str], Any, dict[str, Any]], T],
    on_sql: Callable[[SqlConnection, FromClause], T],
) -> T:
    """``on_files`` (the checked location, its format, fsspec options) or ``on_sql`` (on the kept
    engine and typed source); a failing source, driver or option is the caller's 400."""
    try:
        if usable.type == "files":
            url = files_location(usable, location["path"])
            return on_files(url, location["format"], storage_options(usable.params, usable.secrets))
        return sources.compute(usable, location, version, on_sql)
    except HimaliaError:
        raise
    except Exception as error:
        raise InvalidInput(
            f"Cannot {verb} '{usable.name}': {driver_message(error, usable.secrets)}", field="connection"
        ) from None


def condition_probes(conditions: list[dict[str, Any]]) -> list[str]:
    """The probes a dataset's row conditions imply: how many rows break each, and their share."""
    return [f"{stat}:{condition['name']}" for condition in conditions for stat in CONDITION_STATS]


def compute_custom(
    usable: UsableConnection, location: dict[str, Any], metric: dict[str, str], sources: SqlSources
) -> Any:
    """A custom metric's value. SQL runs as a subquery, so only a SELECT can run, never DDL or DML."""
    if "sql" in metric:
        if usable.type != "sql":
            raise InvalidInput(f"'{metric['name']}' is SQL but the dataset is files.", field="custom_metrics")
        backend = make_url(usable.params["url"]).get_backend_name()
        body = one_statement(metric["sql"], backend, field="custom_metrics", query=True).replace(":", "\\:")
        try:
            with sources.engine(usable).connect() as connection:
                value = connection.execute(text(f"SELECT * FROM ({body}) AS himalia_metric")).scalar()
                connection.rollback()
                return _plain(value)
        except Exception as error:
            message = f"The metric '{metric['name']}' failed: {driver_message(error, usable.secrets)}"
            raise InvalidInput(message, field="custom_metrics") from None
    portable = {**asdict(usable, dict_factory=_without_policy), "protected": list(usable.policy.protected)}
    ran = run_function(metric["python"], "metric", [portable, location], setup="himalia.data.metrics.load_frame")
    if ran.error is not None:
        raise InvalidInput(
            f"The metric '{metric['name']}' failed: {scrub(ran.error, usable.secrets)}", field="custom_metrics"
        )
    return ran.result


def _without_policy(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """``asdict``'s factory: the connection as JSON for a child process (the policy travels apart)."""
    return {key: value for key, value in items if key != "policy"}


def _plain(value: Any) -> Any:
    """A JSON-able value from whatever a driver returns."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe_value(value: MetricValue, dataset: str | None) -> DescribeMetricValue:
    return from_row(DescribeMetricValue, value, dataset=dataset)


class MetricService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, datasets: DatasetService) -> None:
        super().__init__(db, audit, log)
        self.datasets = datasets
        #: Engines and typed columns kept between computations (keyed by the caller's credentials).
        self.sources = SqlSources()

    def compute(
        self,
        caller: Caller,
        key: str,
        name: str,
        probes: list[str] | None = None,
        *,
        origin: str = "manual",
        run_id: str | None = None,
    ) -> ComputedMetrics:
        """Compute the requested metrics (by default the dataset's own, and its freshness when it
        declares one) in one pass, and keep them."""
        with self.db.read() as session:
            dataset, permissions = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            require_run_or_write(session, caller, dataset.project, permissions)
            usable = self.datasets.usable(session, caller, dataset)
            location, custom = dict(dataset.location), {m["name"]: m for m in dataset.custom_metrics}
            declared = dict(dataset.freshness) if dataset.freshness else None
            version = dataset.schema_refreshed_at.isoformat() if dataset.schema_refreshed_at else ""
            conditions = [RowCondition.model_validate(c) for c in dataset.conditions]
            implied = [p for p in condition_probes(dataset.conditions) if p not in dataset.probes]
            requested = probes if probes is not None else [*dataset.probes, *implied, *custom]
        fresh = (probes is None and declared is not None) or any(m in freshness.METRICS for m in requested)
        if fresh and declared is None:
            raise InvalidInput(f"{name} declares no freshness to compute.", field="probes")
        requested = [m for m in requested if m not in freshness.METRICS]
        builtin = parse_probes([p for p in requested if p not in custom])
        newest = freshness.probe_of(declared) if fresh and declared else None
        scanned = [*builtin, newest] if newest is not None and newest not in builtin else builtin
        values = compute_probes(usable, location, scanned, self.sources, version, conditions) if scanned else {}
        if newest is not None:
            answer = values[newest.id] if newest in builtin else values.pop(newest.id)
            values.update(freshness.metrics_of(answer, utcnow()))
        for metric in requested:
            if metric in custom:
                values[metric] = compute_custom(usable, location, custom[metric], self.sources)
        computed_at = utcnow()
        with self.db.write() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            session.add_all(
                MetricValue(
                    project_id=dataset.project_id,
                    dataset_id=dataset.id,
                    metric=metric,
                    value=value,
                    computed_at=computed_at,
                    origin=origin,
                    run_id=run_id,
                    actor=caller.login,
                )
                for metric, value in values.items()
            )
            record_input(session, caller, dataset, rows=_count(values.get("record_count")))
            self.audit.record(
                session,
                caller,
                "metrics.compute",
                "dataset",
                name,
                project_key=key,
                details={"metrics": sorted(values), "origin": origin, "run_id": run_id},
            )
        return ComputedMetrics(dataset=name, computed_at=computed_at, values=values)

    def failing_rows(self, caller: Caller, key: str, name: str, condition: str, limit: int) -> dict[str, Any]:
        """A sample of at most ``limit`` rows that break the row ``condition``, in one bounded
        statement as the caller (who may compute the dataset's metrics)."""
        with self.db.read() as session:
            dataset, permissions = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            require_run_or_write(session, caller, dataset.project, permissions)
            usable = self.datasets.usable(session, caller, dataset)
            location = dict(dataset.location)
            version = dataset.schema_refreshed_at.isoformat() if dataset.schema_refreshed_at else ""
            declared = next((c for c in dataset.conditions if c["name"] == condition), None)
        if declared is None:
            raise InvalidInput(f"{name} has no row condition '{condition}'.", field="condition")
        return sample_failing_rows(
            usable, location, RowCondition.model_validate(declared), limit, self.sources, version
        )

    def record(self, caller: Caller, key: str, spec: RecordMetric, origin: str = "notebook") -> DescribeMetricValue:
        """Keep a value a notebook computed (``himalia.record_metric``)."""
        with self.db.write() as session:
            project, permissions = require_project(session, caller, key)
            require_run_or_write(session, caller, project, permissions)
            dataset_id = None
            if spec.dataset is not None:
                dataset, _ = self.datasets.find(session, caller, key, spec.dataset, ProjectPermission.READ_DASHBOARDS)
                dataset_id = dataset.id
            value = MetricValue(
                project_id=project.id,
                dataset_id=dataset_id,
                metric=spec.name,
                value=spec.value,
                computed_at=utcnow(),
                origin="run" if spec.run_id else origin,
                run_id=spec.run_id,
                actor=caller.login,
            )
            session.add(value)
            session.flush()
            self.audit.record(
                session,
                caller,
                "metrics.record",
                "metric",
                spec.name,
                project_key=key,
                details={"dataset": spec.dataset, "run_id": spec.run_id},
            )
            return describe_value(value, spec.dataset)

    def history(
        self,
        caller: Caller,
        key: str,
        dataset: str | None = None,
        metric: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[DescribeMetricValue]:
        """The newest ``limit`` values, oldest first (a time series)."""
        with self.db.read() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.READ_DASHBOARDS)
            query = (
                select(MetricValue, Dataset.name)
                .outerjoin(Dataset, Dataset.id == MetricValue.dataset_id)
                .where(MetricValue.project_id == project.id)
            )
            if dataset is not None:
                found, _ = self.datasets.find(session, caller, key, dataset, ProjectPermission.READ_DASHBOARDS)
                query = query.where(MetricValue.dataset_id == found.id)
            if metric is not None:
                query = query.where(MetricValue.metric == metric)
            if since is not None:
                query = query.where(MetricValue.computed_at >= since)
            rows = session.execute(query.order_by(MetricValue.computed_at.desc(), MetricValue.id.desc()).limit(limit))
            return [describe_value(value, name) for value, name in reversed(rows.all())]

    @staticmethod
    def latest(session: Session, dataset: Dataset, metrics: set[str]) -> dict[str, MetricValue]:
        """The last value of each of ``metrics`` on ``dataset``, in one statement."""
        newest = (
            select(func.max(MetricValue.id).label("id"))
            .where(MetricValue.dataset_id == dataset.id, MetricValue.metric.in_(metrics))
            .group_by(MetricValue.metric)
            .subquery()
        )
        rows = session.scalars(select(MetricValue).join(newest, MetricValue.id == newest.c.id))
        return {row.metric: row for row in rows}

    @staticmethod
    def before(session: Session, dataset: Dataset, metric: str, value_id: int, count: int) -> list[Any]:
        """The ``count`` values of ``metric`` computed before the value ``value_id``, oldest first."""
        rows = session.scalars(
            select(MetricValue.value)
            .where(
                MetricValue.project_id == dataset.project_id,
                MetricValue.dataset_id == dataset.id,
                MetricValue.metric == metric,
                MetricValue.id < value_id,
            )
            .order_by(MetricValue.id.desc())
            .limit(count)
        )
        return list(reversed(rows.all()))

    @staticmethod
    def recent(session: Session, dataset: Dataset, metric: str, count: int = 30) -> list[Any]:
        rows = session.scalars(
            select(MetricValue.value)
            .where(MetricValue.dataset_id == dataset.id, MetricValue.metric == metric)
            .order_by(MetricValue.computed_at.desc(), MetricValue.id.desc())
            .limit(count)
        )
        return list(reversed(rows.all()))
