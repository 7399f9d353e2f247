"""The ``audit`` trail: filtered pages, exports and chain verification (view_audit)."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.identity.audit import FACET_LIMIT, AuditFilter
from himalia.wire.audit import AuditFacets
from himalia.wire.common import Page
from himalia.wire.identity import AuditVerification, DescribeAuditEntry

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]|$)")


class AuditFilterQuery(Query):
    actor: str | None = Field(None, max_length=100)
    action: str | None = Field(None, max_length=60, description="An action, or a prefix such as 'project'.")
    project: str | None = Field(None, max_length=40)
    object_type: str | None = Field(None, max_length=40)
    object_id: str | None = Field(None, max_length=200)
    since: datetime | None = Field(None, description="From this instant on; in UTC unless it names its zone.")
    until: datetime | None = Field(None, description="Before this instant; in UTC unless it names its zone.")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_8601(cls, value: object) -> object:
        """A date and time as written, never a number of seconds since 1970 ('2026' is not 1970-01-01T00:33)."""
        if isinstance(value, str) and not _ISO_DATE.match(value):
            raise ValueError("is not a time such as 2026-12-02T10:00:00+01:00")
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, moment: datetime | None, info: ValidationInfo) -> datetime | None:
        """In UTC, the zone of the trail (a time without a zone is taken as UTC); until after since."""
        if moment is None:
            return None
        try:
            moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("is out of range in UTC") from None
        since = info.data.get("since")
        if info.field_name == "until" and since is not None and moment <= since:
            raise ValueError("must be after since")
        return moment

    def to_filter(self) -> AuditFilter:
        return AuditFilter(**self.model_dump(include=set(AuditFilter.__dataclass_fields__)))


class ListAuditQuery(AuditFilterQuery, PageQuery):
    pass


class ExportAuditQuery(AuditFilterQuery):
    format: Literal["jsonl", "csv"] = "jsonl"


class AuditHandler(APIHandler):
    route = "/audit"

    @operation("Audit entries, newest first, filtered.", query=ListAuditQuery, response=Page[DescribeAuditEntry])
    async def get(self, query: ListAuditQuery) -> Page[DescribeAuditEntry]:
        return await self.call(
            self.control_plane.audit.list_entries, self.caller, query.to_filter(), query.limit, query.offset
        )


class AuditFacetsHandler(APIHandler):
    route = "/audit/facets"

    @operation(
        f"The actors, actions, object types and projects the trail holds, to filter by (at most {FACET_LIMIT} each).",
        response=AuditFacets,
    )
    async def get(self) -> AuditFacets:
        return await self.call(self.control_plane.audit.facets, self.caller)


def _take(lines: Iterator[str], count: int) -> list[str]:
    return list(islice(lines, count))


class AuditExportHandler(APIHandler):
    route = "/audit/export"

    @operation(
        "Export the filtered trail, oldest first, as JSON lines or CSV.",
        query=ExportAuditQuery,
        media_types=("application/x-ndjson", "text/csv"),
    )
    async def get(self, query: ExportAuditQuery) -> None:
        lines = self.control_plane.audit.export(self.caller, query.to_filter(), query.format)
        first = await self.call(_take, lines, 1000)  # checks permissions before any byte is sent
        content_type = "text/csv" if query.format == "csv" else "application/x-ndjson"
        self.set_header("Content-Type", f"{content_type}; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="himalia-audit.{query.format}"')
        chunk = first
        while chunk:
            self.write("".join(chunk))
            await self.flush()
            chunk = await self.call(_take, lines, 1000)
        self.finish()


class AuditVerifyHandler(APIHandler):
    route = "/audit/verify"

    @operation("Verify the hash chain; name every edited, deleted or inserted entry.", response=AuditVerification)
    async def get(self) -> AuditVerification:
        return await self.call(self.control_plane.audit.verify, self.caller)


handlers = [AuditHandler, AuditFacetsHandler, AuditExportHandler, AuditVerifyHandler]
