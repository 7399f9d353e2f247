"""Checks: defining them on datasets, running them on fresh metrics and keeping their results.

What each kind of check judges, and how, lives in ``himalia.data.rules``.
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from himalia.core.errors import Conflict, HimaliaError, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.core.units import parse_duration
from himalia.data import freshness
from himalia.data.datasets import DatasetService
from himalia.data.metrics import MetricService
from himalia.data.probes import condition_of, parse_probes
from himalia.data.rules import Evaluation, MetricReading, Outcome, evaluate, worst
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project, require_run_or_write
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database
from himalia.store.orm import Check, CheckResult, Dataset, utcnow
from himalia.wire.common import from_row
from himalia.wire.data import CheckRun, CheckSpec, DescribeCheck, DescribeCheckResult


def describe_result(result: CheckResult, check: str, dataset: str, *, content: bool) -> DescribeCheckResult:
    """A result as the API shows it; the failing rows it sampled only to readers of the ``content``."""
    return from_row(
        DescribeCheckResult, result, check=check, dataset=dataset, failing_rows=result.failing_rows if content else None
    )


def describe_check(check: Check, last: CheckResult | None, *, content: bool) -> DescribeCheck:
    params = dict(check.params)
    expected = params.pop("expected", None)
    return from_row(
        DescribeCheck,
        check,
        dataset=check.dataset.name,
        expected_columns=expected,
        last_result=describe_result(last, check.name, check.dataset.name, content=content) if last else None,
        **params,  # the type's own settings (bounds, values, code...) are stored as one JSON object
    )


class CheckService(Service):
    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        log: Any,
        datasets: DatasetService,
        metrics: MetricService,
        failing_rows_sample: int = 10,
    ) -> None:
        super().__init__(db, audit, log)
        self.datasets = datasets
        self.metrics = metrics
        #: How many failing rows a failed check on a row condition keeps.
        self.failing_rows_sample = failing_rows_sample

    @staticmethod
    def _last_results(session: Session, check_ids: list[int]) -> dict[int, CheckResult]:
        newest = (
            select(func.max(CheckResult.id).label("id"))
            .where(CheckResult.check_id.in_(check_ids))
            .group_by(CheckResult.check_id)
            .subquery()
        )
        return {r.check_id: r for r in session.scalars(select(CheckResult).join(newest, CheckResult.id == newest.c.id))}

    def _checks(self, session: Session, dataset: Dataset) -> list[Check]:
        return list(
            session.scalars(
                select(Check)
                .options(joinedload(Check.dataset))
                .where(Check.dataset_id == dataset.id)
                .order_by(Check.name)
            )
        )

    def list_checks(self, caller: Caller, key: str, name: str) -> list[DescribeCheck]:
        with self.db.read() as session:
            dataset, permissions = self.datasets.find(session, caller, key, name, ProjectPermission.READ_DASHBOARDS)
            checks = self._checks(session, dataset)
            last = self._last_results(session, [c.id for c in checks])
            content = ProjectPermission.READ_CONTENT in permissions
            return [describe_check(c, last.get(c.id), content=content) for c in checks]

    def _find(self, session: Session, dataset: Dataset, check: str) -> Check:
        found = session.scalar(
            select(Check).options(joinedload(Check.dataset)).where(Check.dataset_id == dataset.id, Check.name == check)
        )
        if found is None:
            raise NotFound(f"There is no check '{check}' on {dataset.name}.")
        return found

    def get_check(self, caller: Caller, key: str, name: str, check: str) -> DescribeCheck:
        with self.db.read() as session:
            dataset, permissions = self.datasets.find(session, caller, key, name, ProjectPermission.READ_DASHBOARDS)
            found = self._find(session, dataset, check)
            last = self._last_results(session, [found.id]).get(found.id)
            return describe_check(found, last, content=ProjectPermission.READ_CONTENT in permissions)

    def _params(self, caller: Caller, dataset: Dataset, spec: CheckSpec) -> dict[str, Any]:
        if spec.type == "custom_python":
            caller.require(GlobalPermission.WRITE_UNSAFE_CODE)
        condition = condition_of(spec.metric)
        if condition is not None and condition not in {c["name"] for c in dataset.conditions}:
            raise InvalidInput(
                f"{dataset.name} has no row condition '{condition}' for '{spec.metric}' to count.", field="metric"
            )
        params = spec.params()
        if spec.type == "freshness" and spec.metric is None:
            if dataset.freshness is None:
                raise InvalidInput(
                    f"A freshness check of the data judges {dataset.name}'s declared freshness, and it declares "
                    "none: declare its freshness (column, max_age) first, or give the check a metric and max_age.",
                    field="type",
                )
            if spec.warn_after is not None and parse_duration(spec.warn_after) >= parse_duration(
                dataset.freshness["max_age"]
            ):
                raise InvalidInput(
                    f"'warn_after' is not below {dataset.name}'s freshness max_age {dataset.freshness['max_age']}.",
                    field="warn_after",
                )
        if spec.type == "schema_unchanged":
            if dataset.columns is None:
                raise InvalidInput("Read the dataset's schema before checking that it does not change.", field="type")
            params["expected"] = list(dataset.columns)
        return params

    def save_check(
        self, caller: Caller, key: str, name: str, spec: CheckSpec, *, replace: str | None = None
    ) -> DescribeCheck:
        """Create a check, or with ``replace`` the name of an existing one, redefine it."""
        with self.db.write() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            if replace is None:
                if session.scalar(select(Check.id).where(Check.dataset_id == dataset.id, Check.name == spec.name)):
                    raise Conflict(f"A check '{spec.name}' already exists on {name}.", field="name")
                check = Check(dataset=dataset, name=spec.name)
                session.add(check)
            else:
                check = self._find(session, dataset, replace)
                if spec.name != replace and session.scalar(
                    select(Check.id).where(Check.dataset_id == dataset.id, Check.name == spec.name)
                ):
                    raise Conflict(f"A check '{spec.name}' already exists on {name}.", field="name")
                check.name = spec.name
            check.type, check.metric, check.params = spec.type, spec.metric, self._params(caller, dataset, spec)
            session.flush()
            self.audit.record(
                session,
                caller,
                "check.save",
                "check",
                f"{name}/{spec.name}",
                project_key=key,
                details=spec.model_dump(mode="json", exclude_none=True),
            )
            return describe_check(check, None, content=False)

    def delete_check(self, caller: Caller, key: str, name: str, check: str) -> None:
        with self.db.write() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.WRITE_CONTENT)
            session.delete(self._find(session, dataset, check))
            self.audit.record(session, caller, "check.delete", "check", f"{name}/{check}", project_key=key)

    def run_checks(
        self, caller: Caller, key: str, name: str, *, origin: str = "manual", run_id: str | None = None
    ) -> CheckRun:
        """Compute the metrics the checks need (one pass), then judge every check and keep the results."""
        with self.db.read() as session:
            dataset, permissions = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            require_run_or_write(session, caller, dataset.project, permissions)
            checks = self._checks(session, dataset)
            custom = {m["name"] for m in dataset.custom_metrics}
            needed = sorted({c.metric for c in checks if c.metric and c.type != "freshness"})
            if dataset.freshness and any(_judges_data(c) for c in checks):
                needed.append(freshness.NEWEST)
        computable = [m for m in needed if m in custom or m == freshness.NEWEST or _is_probe(m)]
        if computable:
            self.metrics.compute(caller, key, name, computable, origin=origin, run_id=run_id)
        now = utcnow()
        with self.db.read() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            metrics = {_reads(c) for c in checks} - {""}
            latest = self.metrics.latest(session, dataset, metrics) if metrics else {}
            judged: dict[int, Evaluation] = {}
            broken: dict[str, list[int]] = {}  # condition -> the failed checks that count its rows
            for check in self._checks(session, dataset):
                last = latest.get(_reads(check))
                reading = MetricReading(
                    value=last.value if last else None,
                    computed_at=last.computed_at if last else None,
                    history=self._history(session, dataset, check, last.id if last else None),
                )
                judged[check.id] = evaluate(
                    check.type,
                    check.metric,
                    check.params,
                    reading,
                    columns=dataset.columns,
                    now=now,
                    freshness=dataset.freshness,
                )
                condition = condition_of(check.metric)
                if condition and reading.value and judged[check.id].outcome in (Outcome.ERROR, Outcome.WARNING):
                    broken.setdefault(condition, []).append(check.id)
        samples = self._samples(caller, key, name, list(broken))
        with self.db.write() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            sampled = {check_id: samples.get(condition) for condition, ids in broken.items() for check_id in ids}
            results = []
            for check in self._checks(session, dataset):
                if check.id not in judged:  # defined while the others were judged: judged at the next run
                    continue
                result = CheckResult(
                    check=check,
                    outcome=judged[check.id].outcome,
                    value=judged[check.id].value,
                    message=judged[check.id].message,
                    evaluated_at=now,
                    origin=origin,
                    run_id=run_id,
                    failing_rows=sampled.get(check.id),
                )
                session.add(result)
                results.append(describe_result(result, check.name, name, content=True))
            self.audit.record(
                session,
                caller,
                "checks.run",
                "dataset",
                name,
                project_key=key,
                details={"outcomes": {r.check: r.outcome for r in results}, "run_id": run_id},
            )
        overall = worst([Outcome(r.outcome) for r in results])
        return CheckRun(dataset=name, outcome=overall.value, results=results)

    def _samples(self, caller: Caller, key: str, name: str, conditions: list[str]) -> dict[str, dict[str, Any]]:
        """The failing rows of each condition a failed check counts; a sample that cannot be taken
        is logged and left out, the check's outcome stands."""
        samples: dict[str, dict[str, Any]] = {}
        for condition in conditions if self.failing_rows_sample else ():
            try:
                samples[condition] = self.metrics.failing_rows(caller, key, name, condition, self.failing_rows_sample)
            except HimaliaError as error:
                self.log.warning("No sample of the rows breaking %s/%s: %s", name, condition, error.message)
        return samples

    def _history(self, session: Session, dataset: Dataset, check: Check, current: int | None) -> list[Any]:
        """The past values a check judges with its metric's current one (``custom_python`` gets the
        last 30 with it; ``change`` and ``anomaly`` those before it, as far back as they look)."""
        if check.metric is None:
            return []
        if check.type == "custom_python":
            return self.metrics.recent(session, dataset, check.metric)
        depth = {"change": check.params.get("compare_to", 1), "anomaly": check.params.get("window", 0)}.get(check.type)
        if not depth or current is None:
            return []
        return self.metrics.before(session, dataset, check.metric, current, depth)

    def failing_rows_of_run(self, caller: Caller, key: str, run_id: int) -> list[tuple[str, str, dict[str, Any]]]:
        """The failing rows the checks of scenario run ``run_id`` kept, for a reporter to send out
        of the platform: the run-as user needs ``export_datasets``, as for sending a dataset."""
        with self.db.read() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.EXPORT_DATASETS)
            rows = session.execute(
                select(Dataset.name, Check.name, CheckResult.failing_rows)
                .join(Check, Check.id == CheckResult.check_id)
                .join(Dataset, Dataset.id == Check.dataset_id)
                .where(
                    Dataset.project_id == project.id,
                    CheckResult.run_id == str(run_id),
                    CheckResult.failing_rows.is_not(None),
                )
                .order_by(CheckResult.id)
            )
            return [(dataset, check, sample) for dataset, check, sample in rows]

    def history(
        self, caller: Caller, key: str, dataset: str | None = None, check: str | None = None, limit: int = 1000
    ) -> list[DescribeCheckResult]:
        """The newest ``limit`` results, oldest first."""
        with self.db.read() as session:
            project, permissions = require_project(session, caller, key, ProjectPermission.READ_DASHBOARDS)
            content = ProjectPermission.READ_CONTENT in permissions
            query = (
                select(CheckResult, Check.name, Dataset.name)
                .join(Check, Check.id == CheckResult.check_id)
                .join(Dataset, Dataset.id == Check.dataset_id)
                .where(Dataset.project_id == project.id)
            )
            if dataset is not None:
                query = query.where(Dataset.name == dataset)
            if check is not None:
                query = query.where(Check.name == check)
            rows = session.execute(query.order_by(CheckResult.id.desc()).limit(limit)).all()
            return [
                describe_result(result, check_name, dataset_name, content=content)
                for result, check_name, dataset_name in reversed(rows)
            ]


def _judges_data(check: Check) -> bool:
    """A freshness check without a metric judges the data's declared freshness."""
    return check.type == "freshness" and check.metric is None


def _reads(check: Check) -> str:
    """The metric whose last value a check judges ("" for none)."""
    return freshness.NEWEST if _judges_data(check) else check.metric or ""


def _is_probe(metric: str) -> bool:
    try:
        parse_probes([metric])
    except InvalidInput:
        return False
    return True
