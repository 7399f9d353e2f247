"""Runs across projects and the operations ``board``: what the morning check reads."""

from datetime import UTC, datetime, timedelta

from pydantic import Field, field_validator

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.core.units import parse_duration
from himalia.scenarios.runs import RunFilters
from himalia.store.orm import utcnow
from himalia.wire.common import Page
from himalia.wire.operations import Board
from himalia.wire.scenarios import DescribeRun, RunState

#: The farthest back the board and the run list look: bounds the fire times computed.
MAX_WINDOW = timedelta(days=90)


def _moment(value: object) -> object:
    """``since`` as a time (without a zone: UTC) or as a duration back from now (``24h``, ``7d``)."""
    if isinstance(value, str) and value and value[-1] in "smhdw" and value[:-1].isascii() and value[:-1].isdigit():
        duration = parse_duration(value)
        if duration > MAX_WINDOW:
            raise ValueError("at most 90d back")
        return utcnow() - duration
    return value


class _Since(Query):
    since: datetime | None = Field(None, description="A time (UTC unless it says) or a duration back: 24h, 7d.")

    @field_validator("since", mode="before")
    @classmethod
    def _duration_or_time(cls, value: object) -> object:
        return _moment(value)

    @field_validator("since")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        """Without a zone, UTC; never further back than ``MAX_WINDOW`` (a time as a duration)."""
        moment = moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment
        if moment is not None and moment < utcnow() - MAX_WINDOW - timedelta(minutes=1):
            raise ValueError("at most 90d back")
        return moment


class ListRunsQuery(_Since, PageQuery):
    state: list[RunState] = Field(default_factory=list, max_length=10, description="Repeat or separate by commas.")
    project: str | None = Field(None, max_length=40)
    scenario: str | None = Field(None, max_length=100)
    trigger: str | None = Field(None, max_length=30)

    @field_validator("state", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        values = value if isinstance(value, list) else [value] if isinstance(value, str) else value
        if isinstance(values, list):
            return [part for item in values for part in str(item).split(",") if part]
        return values


class BoardQuery(_Since):
    project: str | None = Field(None, max_length=40)
    scenario: str | None = Field(None, max_length=100)


class RunsHandler(APIHandler):
    route = "/runs"

    @operation(
        "List the runs of every project I may read, newest first.", query=ListRunsQuery, response=Page[DescribeRun]
    )
    async def get(self, query: ListRunsQuery) -> Page[DescribeRun]:
        filters = RunFilters(
            since=query.since,
            states=frozenset(query.state),
            project=query.project,
            scenario=query.scenario,
            trigger=query.trigger,
        )
        return await self.call(self.control_plane.runs.list_all_runs, self.caller, filters, query.limit, query.offset)


class BoardHandler(APIHandler):
    route = "/board"

    @operation(
        "The operations board: each scenario's expected fires and what came of them, deadlines, stale data.",
        query=BoardQuery,
        response=Board,
    )
    async def get(self, query: BoardQuery) -> Board:
        since = query.since or utcnow() - timedelta(hours=24)
        return await self.call(
            self.control_plane.board.board, self.caller, since, project=query.project, scenario=query.scenario
        )


handlers: list[type[APIHandler]] = [RunsHandler, BoardHandler]
