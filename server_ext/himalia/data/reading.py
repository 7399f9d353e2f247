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

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from traitlets import Int
from traitlets.config import LoggingConfigurable

from himalia.core.errors import HimaliaError, InvalidInput
from himalia.core.permissions import ProjectPermission
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.drivers import driver_message
from himalia.data.lineage import reading_run, record_input
from himalia.identity.caller import Caller
from himalia.identity.service import AuditRecorder, Service
from himalia.store.db import Database

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"
CSV = "text/csv"
Format = Literal["arrow", "csv"]
StoppedBy = Literal["", "limit", "max_bytes"]
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


@dataclass
class DatasetStream:
    """An open read: ``chunks()`` encodes it, pulled a chunk at a time; the outcome is known at its end."""

    media_type: str
    batches: "Iterator[pa.RecordBatch]"
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
        from himalia.data.arrow_rows import ArrowEncoder, CsvEncoder

        encoder = ArrowEncoder(first.schema) if self.format == "arrow" else CsvEncoder(first.schema)
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
        yield encoder.finish(self.outcome.rows, self.outcome.stopped_by)

    def close(self) -> None:
        """Release the source's connection, read to the end or not."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()

    def _bounded(self) -> "Iterator[pa.RecordBatch]":
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

    def _fitting(self, batch: "pa.RecordBatch") -> "pa.RecordBatch":
        """The longest head of ``batch`` whose encoded size keeps the read within ``max_bytes``."""
        from himalia.data.arrow_rows import encoded_size

        room = self.max_bytes - self.outcome.bytes
        rows = batch.num_rows
        while rows and encoded_size(batch.slice(0, rows), self.format) > room:
            rows //= 2
        return batch.slice(0, rows)


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
        from himalia.data.arrow_rows import files_batches, sql_batches

        read = files_batches if usable.type == "files" else sql_batches
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
            if reading_run(session, caller) is not None:  # a run's kernel: one of the run's inputs
                with contextlib.suppress(HimaliaError):  # deleted, or the grant revoked, while it streamed
                    dataset, _ = self.datasets.find(session, caller, key, name, ProjectPermission.READ_CONTENT)
                    record_input(session, caller, dataset, rows=stream.outcome.rows)
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
