"""``%load_ext himalia``: the ``%%sql <connection>`` cell magic, which returns a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from himalia.kernel.client import Connection, HimaliaClientError

if TYPE_CHECKING:
    import pandas as pd


def sql(line: str, cell: str) -> pd.DataFrame:
    """``%%sql <connection>``: the cell's query on that connection, with the kernel user's credentials."""
    name = line.strip()
    if not name:
        raise HimaliaClientError("Name the connection: %%sql <connection>")
    return Connection(name).read_sql(cell)


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magic_function(sql, magic_kind="cell", magic_name="sql")
