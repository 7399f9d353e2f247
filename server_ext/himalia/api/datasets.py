"""``projects/{key}/datasets``, their schema, metrics and checks, and the project's histories."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator
from tornado.iostream import StreamClosedError

from himalia.api.base import APIHandler, PageQuery, Query, log, operation
from himalia.core.errors import HimaliaError
from himalia.data.reading import ARROW_STREAM, CSV, DatasetStream, ReadRequest, parse_columns
from himalia.wire.common import Page
from himalia.wire.data import (
    CheckRun,
    CheckSpec,
    ComputedMetrics,
    ComputeMetrics,
    CreateDataset,
    DatasetSchema,
    DescribeCheck,
    DescribeCheckResult,
    DescribeDataset,
    DescribeMetricValue,
    ExportHistory,
    RecordMetric,
    UpdateDataset,
)


class DatasetsHandler(APIHandler):
    route = "/projects/{key}/datasets"

    @operation("The project's datasets (read_content).", query=PageQuery, response=Page[DescribeDataset])
    async def get(self, key: str, query: PageQuery) -> Page[DescribeDataset]:
        return await self.call(self.control_plane.datasets.list_datasets, self.caller, key, query.limit, query.offset)

    @operation(
        "Define a dataset on a connection I may use; its schema is read now (write_content).",
        body=CreateDataset,
        response=DescribeDataset,
        status=201,
    )
    async def post(self, key: str, spec: CreateDataset) -> DescribeDataset:
        return await self.call(self.control_plane.datasets.create_dataset, self.caller, key, spec)


class DatasetHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}"

    @operation("Describe a dataset, and whether I may write it.", response=DescribeDataset)
    async def get(self, key: str, name: str) -> DescribeDataset:
        return await self.call(self.control_plane.datasets.get_dataset, self.caller, key, name)

    @operation(
        "Change a dataset's description, probes or settings (write_content).",
        body=UpdateDataset,
        response=DescribeDataset,
    )
    async def patch(self, key: str, name: str, spec: UpdateDataset) -> DescribeDataset:
        return await self.call(self.control_plane.datasets.update_dataset, self.caller, key, name, spec)

    @operation("Delete a dataset's definition (the data stays where it is; write_content).")
    async def delete(self, key: str, name: str) -> None:
        await self.call(self.control_plane.datasets.delete_dataset, self.caller, key, name)


class SchemaHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/schema"

    @operation("The columns as last read.", response=DatasetSchema)
    async def get(self, key: str, name: str) -> DatasetSchema:
        return await self.call(self.control_plane.datasets.get_schema, self.caller, key, name)

    @operation("Read the columns from the source again and say what changed (write_content).", response=DatasetSchema)
    async def post(self, key: str, name: str) -> DatasetSchema:
        return await self.call(self.control_plane.datasets.refresh_schema, self.caller, key, name)


#: Far beyond any configured maximum: a bound on the text parsed, not the rule (``DatasetReading.max_rows``).
LIMIT_CEILING = 10**12


class DataQuery(Query):
    format: Literal["arrow", "csv"] | None = Field(
        None, description="arrow (the default: an Arrow IPC stream) or csv; or say it with Accept: text/csv."
    )
    limit: int | None = Field(None, ge=1, le=LIMIT_CEILING, description="Rows at most (DatasetReading.max_rows).")
    columns: str | None = Field(None, max_length=4_000, description="Comma-separated column names of the schema.")


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


class DataHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/data"

    @operation(
        "The dataset's rows, read by the control plane (read_content; no connection credentials needed). An Arrow "
        "stream ends with an empty batch whose metadata says himalia.rows and himalia.stopped_by (limit: more rows "
        "exist; max_bytes: the size cap); CSV says them in the X-Himalia-Rows and X-Himalia-Stopped-By headers.",
        query=DataQuery,
        media_types=(ARROW_STREAM, CSV),
    )
    async def get(self, key: str, name: str, query: DataQuery) -> None:
        accept = self.request.headers.get("Accept", "")
        wants_csv = query.format == "csv" or (query.format is None and CSV in accept and ARROW_STREAM not in accept)
        request = ReadRequest(
            format="csv" if wants_csv else "arrow", limit=query.limit, columns=parse_columns(query.columns)
        )
        stream = await self.call(self.control_plane.reading.open, self.caller, key, name, request)
        try:
            complete = await self._send(stream)
        finally:
            await self.call(stream.close)
            await self.call(self.control_plane.reading.record, self.caller, key, name, request, stream)
        if complete:
            self.finish()

    async def _send(self, stream: DatasetStream) -> bool:
        """Write the read, all but finishing the response; ``False`` when the client went away."""
        chunks = stream.chunks()
        first = await self.call(_next_chunk, chunks)  # the source answered before any byte is sent
        if stream.format == "csv":  # read whole (up to max_bytes), so that its headers can say how it ended
            body = [first or b""]
            while (chunk := await self.call(_next_chunk, chunks)) is not None:
                body.append(chunk)
            self.set_header("Content-Type", f"{CSV}; charset=utf-8")
            self.set_header("X-Himalia-Rows", str(stream.outcome.rows))
            self.set_header("X-Himalia-Stopped-By", stream.outcome.stopped_by)
            self.write(b"".join(body))
            return True
        self.set_header("Content-Type", stream.media_type)
        chunk = first
        try:
            while chunk is not None:
                self.write(chunk)
                await self.flush()
                chunk = await self.call(_next_chunk, chunks)
        except StreamClosedError:
            return False  # the client went away; the audit says how much it was sent
        except HimaliaError as error:
            # The source failed mid-stream: the response ends without the stream's last batch,
            # which is how a client tells a cut read from a complete one.
            log.warning("Read of %s stopped: %s", self.request.path, error.message)
        return True


class HistoryQuery(Query):
    metric: str | None = Field(None, max_length=200)
    since: datetime | None = None
    limit: int = Field(1000, ge=1, le=10_000)

    @field_validator("since")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


class MetricsHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/metrics"

    @operation(
        "The dataset's metric history, oldest first (read_dashboards).",
        query=HistoryQuery,
        response=list[DescribeMetricValue],
    )
    async def get(self, key: str, name: str, query: HistoryQuery) -> list[DescribeMetricValue]:
        return await self.call(
            self.control_plane.metrics.history, self.caller, key, name, query.metric, query.since, query.limit
        )

    @operation(
        "Compute metrics where the data lives and keep them (write_content or run_scenarios).",
        body=ComputeMetrics,
        response=ComputedMetrics,
    )
    async def post(self, key: str, name: str, spec: ComputeMetrics) -> ComputedMetrics:
        return await self.call(self.control_plane.metrics.compute, self.caller, key, name, spec.probes)


class ProjectMetricsHandler(APIHandler):
    route = "/projects/{key}/metrics"

    @operation(
        "The project's metric history, oldest first (read_dashboards).",
        query=HistoryQuery,
        response=list[DescribeMetricValue],
    )
    async def get(self, key: str, query: HistoryQuery) -> list[DescribeMetricValue]:
        return await self.call(
            self.control_plane.metrics.history, self.caller, key, None, query.metric, query.since, query.limit
        )

    @operation(
        "Record a value computed in a notebook (write_content or run_scenarios).",
        body=RecordMetric,
        response=DescribeMetricValue,
        status=201,
    )
    async def post(self, key: str, spec: RecordMetric) -> DescribeMetricValue:
        return await self.call(self.control_plane.metrics.record, self.caller, key, spec)


class ChecksHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/checks"

    @operation("The dataset's checks with their last result (read_dashboards).", response=list[DescribeCheck])
    async def get(self, key: str, name: str) -> list[DescribeCheck]:
        return await self.call(self.control_plane.checks.list_checks, self.caller, key, name)

    @operation(
        "Create a check (write_content; custom_python needs write_unsafe_code).",
        body=CheckSpec,
        response=DescribeCheck,
        status=201,
    )
    async def post(self, key: str, name: str, spec: CheckSpec) -> DescribeCheck:
        return await self.call(self.control_plane.checks.save_check, self.caller, key, name, spec)


class ChecksRunHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/checks/run"

    @operation(
        "Compute the metrics the checks need, then judge every check (write_content or run_scenarios).",
        response=CheckRun,
    )
    async def post(self, key: str, name: str) -> CheckRun:
        return await self.call(self.control_plane.checks.run_checks, self.caller, key, name)


class CheckHandler(APIHandler):
    route = "/projects/{key}/datasets/{name}/checks/{check}"

    @operation("Describe a check and its last result.", response=DescribeCheck)
    async def get(self, key: str, name: str, check: str) -> DescribeCheck:
        return await self.call(self.control_plane.checks.get_check, self.caller, key, name, check)

    @operation("Redefine a check (write_content).", body=CheckSpec, response=DescribeCheck)
    async def put(self, key: str, name: str, check: str, spec: CheckSpec) -> DescribeCheck:
        return await self.call(self.control_plane.checks.save_check, self.caller, key, name, spec, replace=check)

    @operation("Delete a check and its history (write_content).")
    async def delete(self, key: str, name: str, check: str) -> None:
        await self.call(self.control_plane.checks.delete_check, self.caller, key, name, check)


class CheckHistoryQuery(Query):
    dataset: str | None = Field(None, max_length=100)
    check: str | None = Field(None, max_length=100)
    limit: int = Field(1000, ge=1, le=10_000)


class CheckHistoryHandler(APIHandler):
    route = "/projects/{key}/checks/history"

    @operation(
        "Check results, oldest first (read_dashboards).", query=CheckHistoryQuery, response=list[DescribeCheckResult]
    )
    async def get(self, key: str, query: CheckHistoryQuery) -> list[DescribeCheckResult]:
        return await self.call(
            self.control_plane.checks.history, self.caller, key, query.dataset, query.check, query.limit
        )


class HistoryExportHandler(APIHandler):
    route = "/projects/{key}/history/export"

    @operation(
        "Export the metric or check history into a table, defined as a dataset (write_content).",
        body=ExportHistory,
        response=DescribeDataset,
    )
    async def post(self, key: str, spec: ExportHistory) -> DescribeDataset:
        return await self.call(self.control_plane.exports.export_history, self.caller, key, spec)


handlers = [
    DatasetsHandler,
    DatasetHandler,
    SchemaHandler,
    DataHandler,
    MetricsHandler,
    ProjectMetricsHandler,
    ChecksHandler,
    ChecksRunHandler,
    CheckHandler,
    CheckHistoryHandler,
    HistoryExportHandler,
]
