"""What the CLI prints: tables for people, JSON for scripts, and any refusal as one line on stderr."""

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click

from himalia.core.errors import HimaliaError

if TYPE_CHECKING:
    from rich.console import Console

#: How wide tables are where the output is no terminal (a pipe, a file, a CI log); in a terminal,
#: its width. A cell too long for its column ends in an ellipsis: ``--json`` prints the full rows.
PIPE_WIDTH = 100

#: A table's columns: field names, or headers mapped to a field name or to what a row shows there.
Columns = Iterable[str] | Mapping[str, str | Callable[[dict[str, Any]], Any]]

#: A moment as the wire writes it (ISO 8601); a table shows it to the minute.
_MOMENT = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


class OutputChoice(Protocol):
    """What ``emit`` needs of the command's context (the context itself needs ``fail`` from here)."""

    json: bool


@cache
def stdout() -> "Console":
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


@cache
def stderr() -> "Console":
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run(verb: Callable[[], Any]) -> Any:
    """``verb()``, or exit 1 with its refusal (a Himalia error, an invalid input) in one line."""
    from pydantic import ValidationError

    try:
        return verb()
    except HimaliaError as error:
        named = error.field and error.field not in error.message
        fail(error.message + (f" (field: {error.field})" if named else ""))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{where}: {first['msg']}" if where else first["msg"])


def emit(ctx: OutputChoice, value: Any, columns: Columns = ()) -> None:
    """Print a model, a page or a list: JSON for scripts (every field), a table for people."""
    from pydantic import BaseModel

    data: Any
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    if ctx.json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = data["items"] if isinstance(data, dict) and "items" in data else data
    if isinstance(rows, dict):
        rows = [rows]
    shown = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    if not shown and rows:
        shown = {c: c for c in rows[0]}
    sources = list(shown.values())
    print_table(list(shown), [[cell(row.get(s) if isinstance(s, str) else s(row)) for s in sources] for row in rows])


def print_table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    """A table as wide as the terminal, or ``PIPE_WIDTH``; cells are text, never console markup."""
    from rich.table import Column, Table
    from rich.text import Text

    headers, cells = list(columns), [list(row) for row in rows]
    console = stdout()
    gap = 2  # rich pads each cell by one space on either side, the table's edges excepted
    widths = fit(
        [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)],
        [len(h) for h in headers],
        console.width - gap * (len(headers) - 1),
    )
    table = Table(
        *(Column(h, width=w, no_wrap=True, overflow="ellipsis") for h, w in zip(headers, widths, strict=True)),
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for row in cells:
        table.add_row(*(Text(text) for text in row))
    console.print(table)


def fit(widths: list[int], headers: list[int], room: int) -> list[int]:
    """Column widths within ``room``: the widest columns give up space first (long names, emails,
    descriptions end in an ellipsis), none below its header or eight characters of its cells, and
    the first, which names the row, not at all, unless even that is too wide."""
    widths = list(widths)
    readable = [widths[0], *(min(w, max(h, 8)) for w, h in zip(widths[1:], headers[1:], strict=True))]
    for floors in (readable, [min(w, 3) for w in widths]):
        while sum(widths) > room:
            shrinkable = [i for i, width in enumerate(widths) if width > floors[i]]
            if not shrinkable:
                break
            widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    return widths


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(k for k, v in value.items() if v is True) or json.dumps(value)
    if isinstance(value, str) and (moment := _MOMENT.match(value)):
        return f"{moment[1]} {moment[2]}"
    return str(value)


def gibibytes(*values: int) -> str:
    """Byte counts as people size memory: ``2 Gi``, ``0.5 Gi``, ``4-8 Gi`` (a range)."""
    return "-".join(f"{round(value / 2**30, 2):g}" for value in values) + " Gi"


def cores(*values: float) -> str:
    """CPUs as people count them: ``1 core``, ``0.5 cores``, ``1-2 cores`` (a range)."""
    return "-".join(f"{value:g}" for value in values) + (" core" if values == (1,) else " cores")
