"""Reading a dataset through the platform: its rows, for whoever may read the project's content.

Dataiku's model: a project's readers read its datasets without holding the connection's
credentials, which stay with the people who may use the connection. The control plane reads the
rows itself (with the caller's credentials when the caller may use the connection, else with the
connection's shared ones) and hands them out as an Arrow IPC stream, or CSV for people.

A read is bounded three ways, each checked before any row is read: ``limit`` rows (a default and
a maximum, ``DatasetReading.default_rows`` and ``max_rows``), the ``columns`` named (checked
against the dataset's recorded schema, an allow-list: a name is never SQL text) and
``DatasetReading.max_bytes`` of rows encoded. A read that reaches a bound stops there and says
which one (``stopped_by``: ``limit`` when more rows exist, ``max_bytes``): an Arrow stream in the
custom metadata of its last, empty batch (``himalia.rows``, ``himalia.stopped_by``), so a stream
without that batch was cut; CSV, which is read whole, in the response's headers. Every read is
audited: who read which dataset, which columns, how many rows; never a value.
"""

import datetime
import decimal
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from traitlets import Int
from traitlets.config import LoggingConfigurable

from himalia.core.errors import HimaliaError, InvalidInput
from himalia.core.permissions import ProjectPermission
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.drivers import (
    UsableConnection,
    driver_message,
    duckdb_for,
    files_location,
    files_relation_sql,
    sql_engine,
    sql_source,
)
from himalia.identity.caller import Caller
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database

ARROW_STREAM = "application/vnd.apache.arrow.stream"
CSV = "text/csv"
Format = Literal["arrow", "csv"]
StoppedBy = Literal["", "limit", "max_bytes"]
#: Rows fetched from the source at a time.
BATCH_ROWS = 2_000
#: The most columns one read may name (a dataset with more is read whole, without ``columns``).
MAX_COLUMNS = 1_000


class DatasetReading(LoggingConfigurable):
    """The bounds of reads through the platform (``GET …/datasets/{name}/data``)."""

    default_rows = Int(10_000, min=1, config=True, help="Rows a read returns when it names no limit.")
    max_rows = Int(
        1_000_000, min=1, config=True, help="The largest limit a read may ask for; beyond it the read is refused."
    )
    max_bytes = Int(
        256 * 1024 * 1024,
        min=1024,
        config=True,
        help="""Bytes of encoded rows one read returns at most: the read stops before the batch that
        would pass it and says so (a CSV read is held in memory up to this size).""",
    )


@dataclass(frozen=True)
class ReadRequest:
    """What a caller asks of a dataset, as it came: validated by ``DatasetReader.open``."""

    format: Format = "arrow"
    limit: int | None = None
    columns: tuple[str, ...] | None = None


@dataclass
class ReadOutcome:
    rows: int = 0
    bytes: int = 0
    stopped_by: StoppedBy = ""


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """``a, b, c`` as names (spaces around them dropped, nothing else); duplicates and empty names refused."""
    if text is None:
        return None
    names = tuple(part.strip(" ") for part in text.split(","))
    if len(names) > MAX_COLUMNS:
        raise InvalidInput(f"columns: at most {MAX_COLUMNS} names.", field="columns")
    if any(not name for name in names):
        raise InvalidInput("columns: an empty name (two commas, or one at an end).", field="columns")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput(f"columns: '{duplicates[0]}' is named twice.", field="columns")
    return names


def _arrow_type(column: sa.ColumnElement[Any]) -> pa.DataType:
    """The Arrow type of a SQL column, from the Python type its driver returns; text when unknown."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return pa.string()
    known: dict[type, pa.DataType] = {
        bool: pa.bool_(),
        int: pa.int64(),
        float: pa.float64(),
        decimal.Decimal: pa.float64(),
        str: pa.string(),
        bytes: pa.binary(),
        datetime.datetime: pa.timestamp("us"),
        datetime.date: pa.date32(),
        datetime.time: pa.time64("us"),
        datetime.timedelta: pa.duration("us"),
    }
    return known.get(python_type, pa.string())


def _sql_batches(
    usable: UsableConnection, location: dict[str, Any], columns: tuple[str, ...] | None, rows: int
) -> Iterator[pa.RecordBatch]:
    """An empty batch of the columns' types once the statement runs, then the rows as they come."""
    engine = sql_engine(usable)
    try:
        source = sql_source(
            engine, table=location.get("table"), db_schema=location.get("db_schema"), query=location.get("query")
        )
        missing = [name for name in columns or () if name not in source.c]
        if missing:
            raise InvalidInput(
                f"columns: the source no longer has '{missing[0]}'; refresh the dataset's schema.", field="columns"
            )
        chosen = [source.c[name] for name in columns] if columns else list(source.c)
        schema = pa.schema([(column.name, _arrow_type(column)) for column in chosen])
        text_columns = {i for i, f in enumerate(schema) if pa.types.is_string(f.type)}
        statement = sa.select(*chosen).select_from(source).limit(rows)
        with engine.connect() as sql:
            result = sql.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(statement)
            yield pa.RecordBatch.from_pylist([], schema=schema)
            for part in result.partitions(BATCH_ROWS):
                values = list(zip(*part, strict=True))
                arrays = [
                    pa.array(
                        [None if v is None else str(v) for v in column] if i in text_columns else column,
                        type=schema.field(i).type,
                    )
                    for i, column in enumerate(values)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        engine.dispose()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files_batches(
    usable: UsableConnection, location: dict[str, Any], columns: tuple[str, ...] | None, rows: int
) -> Iterator[pa.RecordBatch]:
    selected = ", ".join(_quoted(name) for name in columns) if columns else "*"
    scan = f"SELECT {selected} FROM {files_relation_sql(location['format'])} LIMIT ?"
    with duckdb_for(usable) as duck:
        located = files_location(usable, location["path"])
        reader = duck.sql(scan, params=[located, rows]).to_arrow_reader(BATCH_ROWS)
        yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        yield from reader


@dataclass
class DatasetStream:
    """An open read: ``chunks()`` encodes it, pulled a chunk at a time; the outcome is known at its end."""

    media_type: str
    batches: Iterator[pa.RecordBatch]
    limit: int
    max_bytes: int
    format: Format
    outcome: ReadOutcome = field(default_factory=ReadOutcome)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def chunks(self) -> Iterator[bytes]:
        """The encoded read; the source's failure before the first byte is an ``InvalidInput``."""
        try:
            first = next(self.batches)
        except HimaliaError:
            raise
        except Exception as error:  # the source's fault, whatever its driver raises
            message = driver_message(error, self.secrets)
            raise InvalidInput(f"Cannot read the dataset: {message}", field="dataset") from None
        encoder = _ArrowEncoder(first.schema) if self.format == "arrow" else _CsvEncoder(first.schema)
        yield encoder.start()
        bounded = self._bounded()
        while True:
            try:
                batch = next(bounded)
            except StopIteration:
                break
            except Exception as error:  # the source failed mid-read: the stream ends without its last batch
                message = driver_message(error, self.secrets)
                raise InvalidInput(f"The read stopped: {message}", field="dataset") from None
            chunk = encoder.batch(batch)
            self.outcome.bytes += len(chunk)
            yield chunk
        yield encoder.finish(self.outcome)

    def close(self) -> None:
        """Release the source's connection, read to the end or not."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()

    def _bounded(self) -> Iterator[pa.RecordBatch]:
        """Batches up to ``limit`` rows and ``max_bytes``; a row past the limit says that more exist."""
        for batch in self.batches:
            room = self.limit - self.outcome.rows
            if batch.num_rows > room:
                batch, self.outcome.stopped_by = batch.slice(0, room), "limit"
            fitting = self._fitting(batch)
            if fitting.num_rows:
                self.outcome.rows += fitting.num_rows
                yield fitting
            if fitting.num_rows < batch.num_rows:
                self.outcome.stopped_by = "max_bytes"
            if self.outcome.stopped_by:
                return

    def _fitting(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The longest head of ``batch`` whose encoded size keeps the read within ``max_bytes``."""
        room = self.max_bytes - self.outcome.bytes
        rows = batch.num_rows
        while rows and _encoded_size(batch.slice(0, rows), self.format) > room:
            rows //= 2
        return batch.slice(0, rows)


def _encoded_size(batch: pa.RecordBatch, fmt: Format) -> int:
    if fmt == "arrow":
        return int(pa.ipc.get_record_batch_size(batch))
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
    return out.tell()


class _ArrowEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        self.sink = io.BytesIO()
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.schema = schema

    def _drain(self) -> bytes:
        data = self.sink.getvalue()
        self.sink.seek(0)
        self.sink.truncate()
        return data

    def start(self) -> bytes:
        return self._drain()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        self.writer.write_batch(batch)
        return self._drain()

    def finish(self, outcome: ReadOutcome) -> bytes:
        metadata = {"himalia.rows": str(outcome.rows), "himalia.stopped_by": outcome.stopped_by}
        self.writer.write_batch(pa.RecordBatch.from_pylist([], schema=self.schema), custom_metadata=metadata)
        self.writer.close()
        return self._drain()


class _CsvEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def start(self) -> bytes:
        return (",".join(_csv_field(name) for name in self.schema.names) + "\n").encode()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        out = io.BytesIO()
        pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
        return out.getvalue()

    def finish(self, outcome: ReadOutcome) -> bytes:
        return b""


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


class DatasetReader(Service):
    """``open`` checks who may read and what is asked, then hands back a stream that reads lazily."""

    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        log: Any,
        datasets: DatasetService,
        connections: ConnectionService,
        bounds: DatasetReading,
    ) -> None:
        super().__init__(db, audit, log)
        self.datasets, self.connections, self.bounds = datasets, connections, bounds

    def open(self, caller: Caller, key: str, name: str, request: ReadRequest) -> DatasetStream:
        limit = self.bounds.default_rows if request.limit is None else request.limit
        if not 1 <= limit <= self.bounds.max_rows:
            raise InvalidInput(f"limit: between 1 and {self.bounds.max_rows} rows.", field="limit")
        with self.db.read() as session:
            dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
            known = [column["name"] for column in dataset.columns or []]
            for column in request.columns or ():
                if column not in known:
                    raise InvalidInput(f"columns: {name} has no column '{column[:100]}'.", field="columns")
            usable = self.connections.usable_for_project_reader(session, caller, dataset.connection)
            location = dict(dataset.location)
        read = _files_batches if usable.type == "files" else _sql_batches
        # One row past the limit tells whether more exist; it is never sent.
        batches = read(usable, location, request.columns, limit + 1)
        return DatasetStream(
            media_type=ARROW_STREAM if request.format == "arrow" else CSV,
            batches=batches,
            limit=limit,
            max_bytes=self.bounds.max_bytes,
            format=request.format,
            secrets=usable.secrets,
        )

    def record(self, caller: Caller, key: str, name: str, request: ReadRequest, stream: DatasetStream) -> None:
        """Audit a read once it ended (or was abandoned): who, what, how much; never a value."""
        with self.db.write() as session:
            self.audit.record(
                session,
                caller,
                "dataset.read",
                "dataset",
                name,
                project_key=key,
                details={
                    "format": request.format,
                    "columns": list(request.columns) if request.columns else None,
                    "limit": stream.limit,
                    "rows": stream.outcome.rows,
                    "bytes": stream.outcome.bytes,
                    "stopped_by": stream.outcome.stopped_by or None,
                },
            )
