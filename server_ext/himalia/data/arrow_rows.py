"""Rows as Arrow batches: read from a dataset's source, and encoded for the reply (Arrow IPC or CSV).

Apart from ``reading``, which imports it with the first read: pyarrow weighs about 40 MiB in a
control plane that may never serve one.
"""

import datetime
import decimal
import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from himalia.core.errors import InvalidInput
from himalia.data.drivers import (
    UsableConnection,
    duckdb_for,
    files_location,
    files_relation_sql,
    sql_engine,
    sql_source,
)

#: Rows fetched from the source at a time.
BATCH_ROWS = 2_000


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


def sql_batches(
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


def files_batches(
    usable: UsableConnection, location: dict[str, Any], columns: tuple[str, ...] | None, rows: int
) -> Iterator[pa.RecordBatch]:
    selected = ", ".join(_quoted(name) for name in columns) if columns else "*"
    scan = f"SELECT {selected} FROM {files_relation_sql(location['format'])} LIMIT ?"
    with duckdb_for(usable) as duck:
        located = files_location(usable, location["path"])
        reader = duck.sql(scan, params=[located, rows]).to_arrow_reader(BATCH_ROWS)
        yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        yield from reader


def encoded_size(batch: pa.RecordBatch, fmt: str) -> int:
    if fmt == "arrow":
        return int(pa.ipc.get_record_batch_size(batch))
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
    return out.tell()


class ArrowEncoder:
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

    def finish(self, rows: int, stopped_by: str) -> bytes:
        metadata = {"himalia.rows": str(rows), "himalia.stopped_by": stopped_by}
        self.writer.write_batch(pa.RecordBatch.from_pylist([], schema=self.schema), custom_metadata=metadata)
        self.writer.close()
        return self._drain()


class CsvEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def start(self) -> bytes:
        return (",".join(_csv_field(name) for name in self.schema.names) + "\n").encode()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        out = io.BytesIO()
        pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
        return out.getvalue()

    def finish(self, rows: int, stopped_by: str) -> bytes:
        return b""  # CSV says the outcome in the response's headers


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text
