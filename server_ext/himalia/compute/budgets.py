"""Budgets: how much a project or a group may spend in a calendar month, and what it has spent.

A project's spend is the usage counted to it (its runs, the servers started for it); a group's is
the usage of its members, wherever it is counted. Budgets are administrators' to set; a project's
administrators may read their project's. The alerts at 75 % and 100 % are raised by the budget
watcher (``himalia.operations.budget_alerts``), which reads the spend from here.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from himalia.compute.usage import Window, month_start, next_month, period_of, usage_sums
from himalia.core.errors import Conflict, InvalidInput, NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.identity.caller import Caller
from himalia.identity.projects import projects_granting
from himalia.identity.service import AuditRecorder, Service
from himalia.identity.users import find_groups
from himalia.store.db import Database
from himalia.store.orm import Budget, BudgetAlert, GroupMember, Project, TierUsage
from himalia.wire.usage import CreateBudget, DescribeBudget, DescribeBudgetAlert, UpdateBudget

THRESHOLDS = (75, 100)


@dataclass(frozen=True)
class Spend:
    """A budget's spend in one month, as the watcher judges it."""

    budget_id: int
    project_id: int | None
    project_key: str | None
    group_name: str | None
    amount: float
    spent: float
    period: str

    @property
    def subject(self) -> str:
        return f"project {self.project_key}" if self.project_key else f"group {self.group_name}"


def month_spend(session: Session, budgets: list[Budget], now: datetime) -> dict[int, float]:
    """Each budget's spend in ``now``'s month so far: three statements for any number of budgets."""
    start = month_start(now)
    window = Window(start, next_month(start))
    spend: dict[int, float] = {}
    projects = {b.project_id: b.id for b in budgets if b.project_id is not None}
    if projects:
        rows = usage_sums(
            session, window, now, [TierUsage.project_id], where=[TierUsage.project_id.in_(list(projects))]
        )
        for _, project_id, _, cost in rows:
            spend[projects[project_id]] = spend.get(projects[project_id], 0.0) + cost
    groups = {b.group_id: b.id for b in budgets if b.group_id is not None}
    if groups:
        members: dict[int, list[int]] = defaultdict(list)
        for group_id, user_id in session.execute(
            select(GroupMember.group_id, GroupMember.user_id).where(GroupMember.group_id.in_(list(groups)))
        ):
            members[user_id].append(group_id)
        if members:
            rows = usage_sums(session, window, now, [TierUsage.user_id], where=[TierUsage.user_id.in_(list(members))])
            for _, user_id, _, cost in rows:
                for group_id in members[user_id]:
                    spend[groups[group_id]] = spend.get(groups[group_id], 0.0) + cost
    return {budget.id: round(spend.get(budget.id, 0.0), 6) for budget in budgets}


def _budgets(session: Session) -> Any:
    return select(Budget).options(selectinload(Budget.project), selectinload(Budget.group)).order_by(Budget.id)


class BudgetService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, currency: str = "USD") -> None:
        super().__init__(db, audit, log)
        #: The currency of every amount (``ControlPlane.currency``).
        self.currency = currency

    def _readable(self, session: Session, caller: Caller) -> list[Budget]:
        """Every budget for administrators; the budgets of the projects they administer for others."""
        query = _budgets(session)
        if not caller.is_admin:
            administered = projects_granting(session, caller, frozenset({ProjectPermission.ADMIN}))
            query = query.where(Budget.project_id.in_(list(administered)))
        return list(session.scalars(query))

    def _describe(self, session: Session, budgets: list[Budget], now: datetime) -> list[DescribeBudget]:
        period = period_of(now)
        spend = month_spend(session, budgets, now)
        alerts: dict[int, list[DescribeBudgetAlert]] = defaultdict(list)
        for alert in session.scalars(
            select(BudgetAlert)
            .where(BudgetAlert.budget_id.in_([b.id for b in budgets]), BudgetAlert.period == period)
            .order_by(BudgetAlert.threshold)
        ):
            alerts[alert.budget_id].append(DescribeBudgetAlert.model_validate(alert, from_attributes=True))
        return [
            DescribeBudget(
                id=budget.id,
                project=budget.project.key if budget.project else None,
                group=budget.group.name if budget.group else None,
                amount=budget.amount,
                currency=self.currency,
                period=period,
                spent=spend[budget.id],
                percent=round(100.0 * spend[budget.id] / budget.amount, 2),
                alerts=alerts[budget.id],
                created_by=budget.created_by,
                created_at=budget.created_at,
                updated_at=budget.updated_at,
            )
            for budget in budgets
        ]

    def _find(self, session: Session, caller: Caller, budget_id: int) -> Budget:
        """The budget, if the caller may read it; one 404 otherwise (a budget's existence is no secret
        worth a 403, and a project's budget must not reveal the project)."""
        budget = session.scalar(_budgets(session).where(Budget.id == budget_id))
        if budget is not None and not caller.is_admin:
            administered = projects_granting(session, caller, frozenset({ProjectPermission.ADMIN}))
            if budget.project_id not in administered:
                budget = None
        if budget is None:
            raise NotFound(f"There is no budget {budget_id}.")
        return budget

    def list_budgets(self, caller: Caller, now: datetime | None = None) -> list[DescribeBudget]:
        """The budgets the caller may read, each with this month's spend and alerts."""
        now = now or datetime.now(UTC)
        with self.db.read() as session:
            return self._describe(session, self._readable(session, caller), now)

    def get_budget(self, caller: Caller, budget_id: int, now: datetime | None = None) -> DescribeBudget:
        with self.db.read() as session:
            return self._describe(session, [self._find(session, caller, budget_id)], now or datetime.now(UTC))[0]

    def create_budget(self, caller: Caller, spec: CreateBudget) -> DescribeBudget:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            budget = Budget(amount=spec.amount, created_by=caller.login)
            if spec.project is not None:
                project = session.scalar(select(Project).where(Project.key == spec.project))
                if project is None:
                    raise InvalidInput(f"There is no project '{spec.project}'.", field="project")
                taken = session.scalar(select(Budget.id).where(Budget.project_id == project.id))
                budget.project_id, subject = project.id, f"The project {project.key}"
            else:
                assert spec.group is not None
                [group] = find_groups(session, [spec.group], "group")
                taken = session.scalar(select(Budget.id).where(Budget.group_id == group.id))
                budget.group_id, subject = group.id, f"The group {group.name}"
            if taken is not None:
                raise Conflict(f"{subject} has a budget already (#{taken}): change its amount instead.")
            session.add(budget)
            session.flush()
            self.audit.record(
                session,
                caller,
                "budget.create",
                "budget",
                str(budget.id),
                project_key=spec.project,
                details={"project": spec.project, "group": spec.group, "amount": spec.amount},
            )
            budget_id = budget.id
        return self.get_budget(caller, budget_id)

    def update_budget(self, caller: Caller, budget_id: int, spec: UpdateBudget) -> DescribeBudget:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            budget = self._find(session, caller, budget_id)
            if budget.amount != spec.amount:
                before, budget.amount = budget.amount, spec.amount
                budget.updated_at = datetime.now(UTC)
                self.audit.record(
                    session,
                    caller,
                    "budget.update",
                    "budget",
                    str(budget.id),
                    project_key=budget.project.key if budget.project else None,
                    details={"amount": {"before": before, "after": spec.amount}},
                )
        return self.get_budget(caller, budget_id)

    def delete_budget(self, caller: Caller, budget_id: int) -> None:
        caller.require(GlobalPermission.ADMIN)
        with self.db.write() as session:
            budget = self._find(session, caller, budget_id)
            project = budget.project.key if budget.project else None
            details = {
                "project": project,
                "group": budget.group.name if budget.group else None,
                "amount": budget.amount,
            }
            session.delete(budget)
            self.audit.record(
                session, caller, "budget.delete", "budget", str(budget_id), project_key=project, details=details
            )

    def spends(self, now: datetime) -> list[Spend]:
        """Every budget's spend in ``now``'s month (the watcher's reading, no caller: it is the platform's)."""
        with self.db.read() as session:
            budgets = list(session.scalars(_budgets(session)))
            spend = month_spend(session, budgets, now)
            return [
                Spend(
                    budget.id,
                    budget.project_id,
                    budget.project.key if budget.project else None,
                    budget.group.name if budget.group else None,
                    budget.amount,
                    spend[budget.id],
                    period_of(now),
                )
                for budget in budgets
            ]
