"""Usage ``totals`` and their CSV ``export``, and ``budgets`` per project or group."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from himalia.api.base import APIHandler, Query, operation
from himalia.core.errors import NotFound
from himalia.wire.usage import CreateBudget, DescribeBudget, UpdateBudget, UsageDimension, UsageTotals


class WindowQuery(Query):
    since: datetime | None = Field(
        None, description="From this instant (a time without a zone is UTC); default: this month."
    )
    until: datetime | None = Field(
        None, description="Until this instant, at most 366 days after since; default: the end of since's month."
    )
    user: str | None = Field(None, max_length=100, description="One person's usage (tier managers; others: their own).")


class TotalsQuery(WindowQuery):
    by: UsageDimension = "month"


class ExportQuery(WindowQuery):
    format: Literal["csv"] = "csv"


class UsageTotalsHandler(APIHandler):
    route = "/usage/totals"

    @operation(
        "Hours and cost by month, tier, person or project over a window (mine; tier managers: everyone's).",
        query=TotalsQuery,
        response=UsageTotals,
    )
    async def get(self, query: TotalsQuery) -> UsageTotals:
        usage = self.control_plane.usage
        return await self.call(usage.totals, self.caller, query.by, query.since, query.until, query.user)


class UsageExportHandler(APIHandler):
    route = "/usage/export"

    @operation(
        "The totals by month, tier, person and project as CSV (mine; tier managers: everyone's).",
        query=ExportQuery,
        media_types=("text/csv",),
    )
    async def get(self, query: ExportQuery) -> None:
        usage = self.control_plane.usage
        text = await self.call(usage.export_csv, self.caller, query.since, query.until, query.user)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="himalia-usage.csv"')
        self.finish(text)


class BudgetsHandler(APIHandler):
    route = "/budgets"

    @operation(
        "Budgets with this month's spend and alerts (administrators: all; project administrators: their projects').",
        response=list[DescribeBudget],
    )
    async def get(self) -> list[DescribeBudget]:
        return await self.call(self.control_plane.budgets.list_budgets, self.caller)

    @operation(
        "Set a monthly budget for a project or a group (administrators).",
        body=CreateBudget,
        response=DescribeBudget,
        status=201,
    )
    async def post(self, spec: CreateBudget) -> DescribeBudget:
        return await self.call(self.control_plane.budgets.create_budget, self.caller, spec)


def _budget_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(f"There is no budget {text[:40]}.")
    return int(text)


class BudgetHandler(APIHandler):
    route = "/budgets/{budget_id}"

    @operation("A budget with this month's spend and alerts.", response=DescribeBudget)
    async def get(self, budget_id: str) -> DescribeBudget:
        return await self.call(self.control_plane.budgets.get_budget, self.caller, _budget_id(budget_id))

    @operation("Change a budget's amount (administrators).", body=UpdateBudget, response=DescribeBudget)
    async def patch(self, budget_id: str, spec: UpdateBudget) -> DescribeBudget:
        budgets = self.control_plane.budgets
        return await self.call(budgets.update_budget, self.caller, _budget_id(budget_id), spec)

    @operation("Remove a budget and its alerts (administrators).", status=204)
    async def delete(self, budget_id: str) -> None:
        await self.call(self.control_plane.budgets.delete_budget, self.caller, _budget_id(budget_id))


handlers = [UsageTotalsHandler, UsageExportHandler, BudgetsHandler, BudgetHandler]
