"""The API's vocabulary for usage totals and budgets."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from himalia.wire.common import GroupName, ProjectKey, Request

#: A budget's amount: a JSON number (not a string, not a boolean), per calendar month (UTC).
Amount = Annotated[
    float,
    Field(gt=0, le=1e12, strict=True, description="Per calendar month (UTC), in the instance's currency."),
]
#: What totals are grouped by: the month (UTC), the tier, the person or the project.
UsageDimension = Literal["month", "tier", "user", "project"]


class UsageTotal(BaseModel):
    """Hours and cost of one month, tier, person or project over the window."""

    key: str | None = Field(description="The month (YYYY-MM), tier, login or project key; none: no project.")
    hours: float
    cost: float


class UsageTotals(BaseModel):
    by: UsageDimension
    since: datetime
    until: datetime
    currency: str = Field(description="The currency of every cost (the control plane's currency setting).")
    everyone: bool = Field(description="Whether these are everyone's totals (tier managers), or the caller's own.")
    totals: list[UsageTotal] = Field(description="Largest cost first (by month: in the months' order).")
    hours: float
    cost: float


class CreateBudget(Request):
    """A monthly budget of a project or of a group (the usage of its members), never both."""

    project: ProjectKey | None = None
    group: GroupName | None = None
    amount: Amount

    @model_validator(mode="before")
    @classmethod
    def _one_subject(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("project") is None) == (data.get("group") is None):
            raise ValueError("a budget is for a project or for a group: name exactly one of project and group")
        return data


class UpdateBudget(Request):
    amount: Amount


class DescribeBudgetAlert(BaseModel):
    period: str = Field(description="The month, YYYY-MM in UTC.")
    threshold: int = Field(description="75 or 100 (percent of the amount).")
    spent: float
    amount: float
    raised_at: datetime
    deliveries: list[dict[str, Any]]


class DescribeBudget(BaseModel):
    id: int
    project: str | None
    group: str | None
    amount: float
    currency: str
    period: str = Field(description="The month spent is counted in (this month, UTC).")
    spent: float = Field(description="Spent in that month so far, running servers and runs counted until now.")
    percent: float = Field(description="spent as a percentage of amount.")
    alerts: list[DescribeBudgetAlert] = Field(description="The alerts raised in that month.")
    created_by: str
    created_at: datetime
    updated_at: datetime
