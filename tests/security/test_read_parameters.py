"""Reading through the platform, as an attacker with read_content would try it (class 12).

``columns``, ``limit`` and ``format`` of ``GET …/datasets/{name}/data`` are the only input the
read takes: column names are matched against the dataset's recorded schema (an allow-list, never
SQL text), the limit is a bounded integer, the format one of two words. Every variant below is
refused with a 400 naming its field, before any row is read, and none is audited as a read.
"""

import pyarrow as pa
import pytest

from himalia.controlplane import ControlPlane
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller

from ..conftest import SHARED_SECRET, LiveAPI
from .conftest import Ledger

DATA = "/projects/ALPHA/datasets/transactions/data"
CLASS = "12 read parameters: columns, limit, format"

SQL_FRAGMENTS = [
    "*",
    "1",
    "purchase_amount; DROP TABLE merchants",
    "purchase_amount) FROM merchants --",
    "purchase_amount FROM merchants UNION SELECT name",
    "(SELECT sqlite_version())",
    "count(*)",
    "purchase_amount AS x",
    "purchase_amount/*",
    "--",
    "purchase_amount' OR '1'='1",
    "load_extension('x')",
    "read_text('/etc/passwd')",
    "sqlite_master.sql",
    "transactions_2018.purchase_amount",
    "main.transactions_2018",
]
QUOTED = ['"purchase_amount"', "`purchase_amount`", "[purchase_amount]", "'purchase_amount'", '"a""b"']
ODD_NAMES = ["PURCHASE_AMOUNT", "purchase\tamount", "purchase\u200bamount", "x" * 5000]
COLUMN_LISTS = [
    *SQL_FRAGMENTS,
    *QUOTED,
    *ODD_NAMES,
    "purchase_amount,purchase_amount",
    "card_id, card_id",
    "card_id,,purchase_amount",
    ",card_id",
    "card_id,",
    ",",
    "",
    ",".join(["card_id"] * 2000),
    ",".join(f"c{i}" for i in range(1001)),
    ",".join(["a"] * 1001),  # more names than a read may take
    "a" * 5_000,  # longer than the parameter may be
]
LIMITS = [
    "-1",
    "0",
    "-0",
    "1e3",
    "1.5",
    "10; DROP TABLE x",
    "0x10",
    "NaN",
    "inf",
    "",
    " ",
    "99999999999999999999",
    str(10**12 + 1),
    str(10**7),
    "1,2",
    "true",
    "\uff11\uff10",  # fullwidth digits
]
FORMATS = ["json", "parquet", "CSV", "Arrow", "arrow;csv", "csv,arrow", "../csv", "text/csv", "", "%00"]


def refused_naming(answer, field: str) -> bool:  # type: ignore[no-untyped-def]
    if answer.status_code != 400:
        return False
    reply = answer.json()
    return reply["field"] == field and SHARED_SECRET not in answer.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_injection_is_refused_with_its_field(api: LiveAPI, plane: ControlPlane, ledger: Ledger) -> None:
    plane.reading.bounds.max_rows = 1_000_000
    for columns in COLUMN_LISTS:
        answer = api.request("GET", DATA, role="reader", params={"columns": columns})
        # "PURCHASE_AMOUNT" and names padded with spaces: never a match made by SQL's own rules.
        assert ledger.tried(CLASS, ("columns", columns), refused_naming(answer, "columns")), (columns, answer.text)
    for limit in LIMITS:
        answer = api.request("GET", DATA, role="reader", params={"limit": limit})
        assert ledger.tried(CLASS, ("limit", limit), refused_naming(answer, "limit")), (limit, answer.text)
    for fmt in FORMATS:
        answer = api.request("GET", DATA, role="reader", params={"format": fmt})
        assert ledger.tried(CLASS, ("format", fmt), refused_naming(answer, "format")), (fmt, answer.text)
    reads = plane.audit.list_entries(Caller.operator(), AuditFilter(action="dataset.read"), 10, 0)
    assert reads.items == []  # nothing was read
    # The tables the fragments name are all still there, and a plain read still works.
    answer = api.request("GET", DATA, role="reader", params={"columns": "card_id", "limit": 1})
    assert pa.ipc.open_stream(answer.content).read_all().column_names == ["card_id"]
    merchants = api.request("GET", "/projects/ALPHA/datasets", role="reader")
    assert merchants.status_code == 200
