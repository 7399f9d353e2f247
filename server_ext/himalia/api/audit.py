"""The ``audit`` trail: filtered pages, exports and chain verification (view_audit)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Literal

from pydantic import Field, field_validator

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.identity.audit import AuditFilter
from himalia.wire.common import Page
from himalia.wire.identity import AuditVerification, DescribeAuditEntry


class AuditFilterQuery(Query):
    actor: str | None = Field(None, max_length=100)
    action: str | None = Field(None, max_length=60, description="An action, or a prefix such as 'project'.")
    project: str | None = Field(None, max_length=40)
    object_type: str | None = Field(None, max_length=40)
    object_id: str | None = Field(None, max_length=200)
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        """A time without a zone is taken as UTC, the zone of the trail."""
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment

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


handlers = [AuditHandler, AuditExportHandler, AuditVerifyHandler]
