"""Reading datasets through the platform (``GET …/datasets/{name}/data``): Arrow and CSV, bounds, audit."""

import io

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller
from himalia.wire.data import AccessSpec, CreateConnection, CreateDataset

from ..conftest import SHARED_SECRET, LiveAPI

DATA = "/projects/ALPHA/datasets/transactions/data"


def arrow_read(body: bytes) -> tuple[pa.Table, dict[bytes, bytes]]:
    """The table a stream holds and the metadata of its last (empty) batch; fails if it has none."""
    reader = pa.ipc.open_stream(body)
    batches, metadata = [], None
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        batches.append(batch)
    assert metadata is not None, "a stream ends with its metadata batch"
    assert batches[-1].num_rows == 0
    return pa.Table.from_batches(batches, schema=reader.schema), dict(metadata)


def test_a_reader_reads_rows_as_arrow_and_the_last_batch_says_more_exist(api: LiveAPI) -> None:
    answer = api.request("GET", DATA, role="reader", params={"limit": 25})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table, metadata = arrow_read(answer.content)
    assert table.num_rows == 25
    assert metadata == {b"himalia.rows": b"25", b"himalia.stopped_by": b"limit"}
    assert "purchase_amount" in table.column_names


def test_a_read_within_the_limit_ends_complete(api: LiveAPI) -> None:
    table, metadata = arrow_read(api.request("GET", DATA, role="reader", params={"limit": 300}).content)
    assert table.num_rows == 300
    assert metadata[b"himalia.stopped_by"] == b""


def test_columns_are_chosen_from_the_schema(api: LiveAPI) -> None:
    answer = api.request("GET", DATA, role="reader", params={"columns": "purchase_amount, card_id", "limit": 5})
    table, _ = arrow_read(answer.content)
    assert table.column_names == ["purchase_amount", "card_id"]
    assert pa.types.is_floating(table.schema.field("purchase_amount").type)


def test_csv_for_people_by_parameter_or_accept(api: LiveAPI) -> None:
    by_parameter = api.request("GET", DATA, role="reader", params={"format": "csv", "limit": 3})
    by_accept = api.request("GET", DATA, role="reader", params={"limit": 3}, headers={"Accept": "text/csv"})
    for answer in (by_parameter, by_accept):
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/csv")
        assert answer.headers["X-Himalia-Rows"] == "3"
        assert answer.headers["X-Himalia-Stopped-By"] == "limit"
        assert pa_csv.read_csv(io.BytesIO(answer.content)).num_rows == 3
    assert by_parameter.content == by_accept.content


def test_the_size_cap_stops_the_read_and_says_so(api: LiveAPI, plane: ControlPlane) -> None:
    plane.reading.bounds.max_bytes = 4096
    answer = api.request("GET", DATA, role="reader", params={"limit": 300})
    table, metadata = arrow_read(answer.content)
    assert 0 < table.num_rows < 300
    assert metadata[b"himalia.stopped_by"] == b"max_bytes"
    assert len(answer.content) < 4096 + 2048  # the schema and the last batch's metadata beyond the rows
    csv = api.request("GET", DATA, role="reader", params={"limit": 300, "format": "csv"})
    assert csv.headers["X-Himalia-Stopped-By"] == "max_bytes"
    assert len(csv.content) <= 4096


def test_the_limit_is_bounded_by_configuration(api: LiveAPI, plane: ControlPlane) -> None:
    plane.reading.bounds.max_rows = 100
    answer = api.request("GET", DATA, role="reader", params={"limit": 101})
    assert answer.status_code == 400
    assert answer.json()["field"] == "limit" and "100" in answer.json()["message"]
    plane.reading.bounds.default_rows = 7
    table, metadata = arrow_read(api.request("GET", DATA, role="reader").content)
    assert table.num_rows == 7 and metadata[b"himalia.stopped_by"] == b"limit"


def test_an_unknown_column_is_named(api: LiveAPI) -> None:
    answer = api.request("GET", DATA, role="reader", params={"columns": "purchase_amount,no_such_column"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "columns"
    assert "no_such_column" in answer.json()["message"]


@pytest.mark.parametrize("role,status", [("nogrant", 404), ("anonymous", 401)])
def test_who_may_not_read_the_project_reads_nothing(api: LiveAPI, role: str, status: int) -> None:
    answer = api.request("GET", DATA, role=role)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("application/json")


def test_read_dashboards_alone_is_refused_naming_who_grants(api: LiveAPI, plane: ControlPlane) -> None:
    from himalia.wire.identity import SetGrant

    owner = plane.users.caller_for("projadmin")
    plane.projects.set_grant(owner, "ALPHA", SetGrant(group="readers", permissions=["read_dashboards"]))
    answer = api.request("GET", DATA, role="reader")
    assert answer.status_code == 403
    assert answer.json()["message"] == (
        "reader may see the dashboards of ALPHA but does not hold 'read_content' on it: "
        "ask projadmin (ALPHA administrators) for it, or an administrator."
    )


def test_a_reader_reads_a_connection_they_may_not_use_and_the_audit_names_no_value(
    api: LiveAPI, plane: ControlPlane, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The connection is the contributors' alone, with a secret: readers read through the platform."""
    admin = plane.users.caller_for("admin")
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "scores.csv").write_text("card_id,score\nC1,610\nC2,720\n")
    contributors = AccessSpec(mode="groups", groups=["contributors"])
    plane.connections.create_connection(
        admin,
        CreateConnection(
            name="drop",
            type="files",
            params={"url": str(tmp_path / "drop")},
            secrets={"token": SHARED_SECRET},
            usable_by=contributors,
        ),
    )
    plane.datasets.create_dataset(
        admin, "ALPHA", CreateDataset(name="scores", connection="drop", path="scores.csv", format="csv")
    )
    described = api.request("GET", "/projects/ALPHA/datasets/scores", role="reader").json()
    assert described["can_use_connection"] is False
    answer = api.request("GET", "/projects/ALPHA/datasets/scores/data", role="reader", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    assert answer.content.decode().splitlines() == ["card_id,score", '"C1",610', '"C2",720']
    assert SHARED_SECRET not in answer.text and SHARED_SECRET not in str(answer.headers)
    credentials = api.request("GET", "/connections/drop/credentials", role="reader")
    assert credentials.status_code == 404  # the reader does not even see the connection
    entries = plane.audit.list_entries(
        Caller.operator(), AuditFilter(action="dataset.read", object_id="scores"), 10, 0
    ).items
    assert [(e.actor, e.details["rows"], e.details["format"]) for e in entries] == [("reader", 2, "csv")]
    # What was recorded, not when or its digest (whose digits may spell 610 by chance).
    trail = str([e.model_dump(exclude={"created_at", "hash"}) for e in entries])
    assert SHARED_SECRET not in trail and "C1" not in trail and "610" not in trail


def test_the_bounds_are_configuration(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from traitlets.config import Config

    from ..conftest import AUDIT_KEY, SECRET_KEY

    config = Config({"DatasetReading": {"default_rows": 5, "max_rows": 50, "max_bytes": 4096}})
    plane = ControlPlane(
        config=config, home=str(tmp_path / "home"), db_url=db_url, secret_keys=[SECRET_KEY], audit_key=AUDIT_KEY
    )
    plane.start()
    try:
        bounds = plane.reading.bounds
        assert (bounds.default_rows, bounds.max_rows, bounds.max_bytes) == (5, 50, 4096)
    finally:
        plane.stop()
