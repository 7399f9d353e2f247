"""``himalia ops``: the project's operations guide and the morning check, from the terminal."""

import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from himalia.cli.context import Context, json_option, pass_ctx
from himalia.cli.output import run
from himalia.core.errors import HimaliaError, InvalidInput

if TYPE_CHECKING:
    from datetime import datetime

    from himalia.wire.operations import Board, Health, StaleDataset


@click.group()
def ops() -> None:
    """Operations: the operations guide and the morning check."""


@ops.command("guide")
@click.argument("key")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True), help="Write it to FILE.")
@click.option("--html", is_flag=True, help="A self-contained HTML page instead of Markdown.")
@pass_ctx
def ops_guide(ctx: Context, key: str, output: str | None, html: bool) -> None:
    """Write project KEY's operations guide, generated from the platform (Markdown by default)."""
    from himalia.operations.guide import operations_guide
    from himalia.store.orm import utcnow

    plane = ctx.plane()
    text = run(lambda: operations_guide(plane, ctx.caller(), key, utcnow(), html=html))
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote the operations guide of {key} to {output}", err=True)


#: The board's colours (``click.style`` names; 208 is orange in the 256-colour palette).
COLOURS: dict[str, str | int] = {
    "succeeded": "green",
    "warning": "yellow",
    "failed": "red",
    "missed": "bright_black",
    "running": "blue",
    "late": 208,
    "ok": "green",
    "degraded": "yellow",
    "unhealthy": "red",
    "error": "red",
    "disabled": "bright_black",
    "WARNING": "yellow",
    "ERROR": "red",
    "EMPTY": "bright_black",
}
#: The terminal's width the morning check fits in.
WIDTH = 100
#: The fires shown under a scenario that needs attention (newest first); the board has them all.
FIRES_SHOWN = 3
ATTENTION = {"failed", "late", "missed"}


@ops.command("status")
@click.option("--project", help="Only this project's scenarios and datasets.")
@click.option("--since", default="24h", show_default=True, help="How far back to look (a duration: 24h, 3d, 90m).")
@json_option
@pass_ctx
def ops_status(ctx: Context, project: str | None, since: str) -> None:
    """The morning check: every expected run since --since, late and missed ones, stale data, the
    platform's health. Exit 0 when all is green, 1 when something needs attention (failed, late,
    missed, stale), 2 when the platform itself is unhealthy or its store cannot be used."""
    from sqlalchemy.exc import SQLAlchemyError

    from himalia.core.units import parse_duration
    from himalia.store.orm import utcnow

    window = run(lambda: _window(parse_duration, since))
    try:
        plane = ctx.started_plane()
    except (HimaliaError, SQLAlchemyError) as error:
        reason = error.message if isinstance(error, HimaliaError) else str(error).splitlines()[0]
        click.echo(f"unhealthy: the store cannot be used: {reason}", err=True)
        sys.exit(2)
    caller = ctx.caller()
    if project is not None:  # a project one cannot see is an error, never an empty (green) board
        run(lambda: plane.projects.get_project(caller, project))
    board = run(lambda: plane.board.board(caller, utcnow() - window, project))
    health = plane.health.check(detailed=caller.is_admin)
    if ctx.json:
        payload = {"board": board.model_dump(mode="json"), "health": health.model_dump(mode="json")}
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        colour = False if os.environ.get("NO_COLOR") else None  # None: click's own check for a terminal
        for line in morning_check_lines(board, health):
            click.echo(line, color=colour)
    sys.exit(2 if health.status == "unhealthy" else 1 if board.needs_attention else 0)


def _window(parse_duration: Callable[[str], timedelta], since: str) -> timedelta:
    try:
        return parse_duration(since)
    except ValueError as error:
        raise InvalidInput(f"--since: {error}", field="since") from None


def _paint(word: str, width: int = 0) -> str:
    return click.style(word.ljust(width), fg=COLOURS.get(word))


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"


def _at(moment: "datetime | None", zone: str) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M") if moment else "-"


def morning_check_lines(board: "Board", health: "Health") -> list[str]:
    """The morning check, a line per scenario and one per thing to act on, within ``WIDTH`` columns.

    Only the status words are coloured, so that clipping a line never cuts an escape sequence.
    """
    since = board.since.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Morning check since {since}: platform " + _paint(health.status)]
    for component in health.components:
        if component.status in ("warning", "error"):
            lines.append(" " * 9 + _paint(component.status, 8) + _clip(f"{component.name}: {component.message}", 82))
    for scenario in board.scenarios:
        zone = scenario.timezone
        latest = next((fire.due_at for fire in scenario.fires if fire.due_at), None)
        deadline = f"  by {_at(scenario.deadline, zone)[-5:]}" if scenario.deadline else ""  # within a day
        what = f"{scenario.project}/{scenario.scenario}"
        when = f"last {_at(latest, zone)}  next {_at(scenario.next_fire, zone)}{deadline}"
        status = scenario.status.value if scenario.status else "-"
        lines.append(_paint(status, 9) + _clip(f"{_clip(what, 26):<27}{_clip(zone, 16):<17}{when}", WIDTH - 9))
        shown = [f for f in scenario.fires if f.status.value in ATTENTION or f.long_running][:FIRES_SHOWN]
        for fire in shown:
            run_name = f"run #{fire.run_id} " if fire.run_id else ""
            said = fire.message or (fire.missed_reason.value.replace("_", " ") if fire.missed_reason else "")
            if fire.long_running and fire.status.value not in ATTENTION:
                said = f"longer than usual ({fire.duration_seconds or 0:.0f} s). {said}"
            when = _at(fire.due_at or fire.started_at, zone)
            lines.append(" " * 9 + _paint(fire.status.value, 10) + _clip(f"{when} {run_name}{said}", WIDTH - 19))
        for alert in scenario.alerts:
            lines.append(" " * 9 + _paint("late", 10) + _clip(f"{alert.kind}: {alert.message}", WIDTH - 19))
        for stale in scenario.stale_datasets:
            lines.append(" " * 9 + _stale_line(stale))
    for stale in board.stale_datasets:
        lines.append(_stale_line(stale))
    counts = ", ".join(f"{count} {status}" for status, count in board.counts.items() if count)
    verdict = "needs attention" if board.needs_attention else "all green"
    lines.append(_clip(f"{len(board.scenarios)} scenario(s); runs: {counts or 'none'}; {verdict}", WIDTH))
    return lines


def _stale_line(stale: "StaleDataset") -> str:
    what = f"stale {stale.project}/{stale.dataset} ({stale.check}): {stale.message}"
    return _paint(stale.outcome, 8) + " " + _clip(what, 80)
