"""What the CLI prints: tables for people, JSON for scripts, and any refusal as one line on stderr."""

import json
import sys
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click

from himalia.core.errors import HimaliaError

if TYPE_CHECKING:
    from rich.console import Console


class OutputChoice(Protocol):
    """What ``emit`` needs of the command's context (the context itself needs ``fail`` from here)."""

    json: bool


@cache
def stdout() -> "Console":
    from rich.console import Console

    return Console()


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


def emit(ctx: OutputChoice, value: Any, columns: Iterable[str] = ()) -> None:
    """Print a model, a page or a list: JSON for scripts, a table for people."""
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
    columns = list(columns) or (list(rows[0]) if rows else [])
    print_table(columns, [[cell(row.get(c)) for c in columns] for row in rows])


def print_table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*row)
    stdout().print(table)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(k for k, v in value.items() if v is True) or json.dumps(value)
    return str(value)
