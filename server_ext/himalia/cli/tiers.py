"""``himalia tier``: hardware tiers and their usage."""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from himalia.cli.context import Context, json_option, pairs, pass_ctx
from himalia.cli.output import cores, emit, gibibytes, run


def _between(request: float, limit: float | None, show: Callable[..., str]) -> str:
    """A request and its limit in one cell: ``1 core``, ``0.5-2 cores``, ``1 Gi or more`` (no limit)."""
    if limit is None:
        return f"{show(request)} or more"
    return show(limit) if limit == request else show(request, limit)


#: What a person compares tiers by, within 100 columns; ``--json`` prints every setting.
TIER_COLUMNS = {
    "name": "name",
    "display": "display_name",
    "cpu": lambda tier: _between(tier["cpu_request"], tier["cpu_limit"], cores),
    "memory": lambda tier: _between(tier["memory_request"], tier["memory_limit"], gibibytes),
    "gpus": "gpus",
    "groups": lambda tier: tier["allowed_groups"] or "everyone",
    "servers": lambda tier: f"{tier['running_servers']} of {tier['max_servers'] or 'any'}",
    "per user": "max_servers_per_user",
    "cost/h": "cost_per_hour",
    "state": lambda tier: "archived" if tier["archived"] else "default" if tier["default"] else "",
}

#: A usage record in one line: a server by its name, a run by its number.
USAGE_COLUMNS = {
    "id": "id",
    "user": "user",
    "tier": "tier",
    "project": "project",
    "server/run": lambda usage: usage["server_name"] if usage["kind"] == "server" else f"#{usage['run_id']}",
    "cost/h": "cost_per_hour",
    "started": "started_at",
    "ended": "ended_at",
}


@click.group()
def tier() -> None:
    """Hardware tiers: changes apply to the next spawn form, no hub redeploy."""


@tier.command("list")
@click.option("--user", help="The tiers this user may choose.")
@click.option("--archived", is_flag=True, help="Include archived tiers.")
@json_option
@pass_ctx
def tier_list(ctx: Context, user: str | None, archived: bool) -> None:
    emit(ctx, run(lambda: ctx.plane().tiers.list_tiers(ctx.caller(), user, archived)), TIER_COLUMNS)


@tier.command("show")
@click.argument("name")
@json_option
@pass_ctx
def tier_show(ctx: Context, name: str) -> None:
    emit(ctx, run(lambda: ctx.plane().tiers.get_tier(ctx.caller(), name)), TIER_COLUMNS)


@tier.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def tier_apply(ctx: Context, path: Path) -> None:
    """Create or replace every tier of a tiers file (the format of hub_config/tiers.yaml)."""
    from himalia.compute.tiers import load_tiers_file

    plane, caller = ctx.plane(), ctx.caller()
    for name, spec in run(lambda: load_tiers_file(path)).items():
        run(partial(plane.tiers.put_tier, caller, name, spec))
        click.echo(f"applied tier {name}")


@tier.command("set")
@click.argument("name")
@click.option("--display-name")
@click.option("--description")
@click.option("--cpu-request", type=float)
@click.option("--cpu-limit", type=float)
@click.option("--memory-request", help="Bytes or a quantity: 2Gi, 512Mi, 8G.")
@click.option("--memory-limit", help="Bytes or a quantity: 2Gi, 512Mi, 8G.")
@click.option("--gpus", type=int)
@click.option("--gpu-resource")
@click.option("--node-selector", "node_selector", multiple=True, metavar="LABEL=VALUE", help="Repeatable.")
@click.option("--shm-size", help="Bytes or a quantity.")
@click.option("--cost-per-hour", type=float)
@click.option("--groups", help="Comma-separated groups allowed to use it.")
@click.option("--everyone", is_flag=True, help="Open it to everyone.")
@click.option("--max-servers-per-user", type=int)
@click.option("--max-servers", type=int)
@click.option("--default", "make_default", is_flag=True, help="Preselect it in the spawn form.")
@click.option("--archive/--unarchive", default=None, help="Offer it to nobody / again.")
@json_option
@pass_ctx
def tier_set(ctx: Context, name: str, **options: Any) -> None:
    """Create a tier or change the given settings of one, keeping the others."""
    from himalia.core.errors import NotFound
    from himalia.wire.compute import TierSpec

    plane, caller = ctx.plane(), ctx.caller()
    try:
        current = plane.tiers.get_tier(caller, name).model_dump(include=set(TierSpec.model_fields))
    except NotFound:
        current = {}
    archive, everyone, make_default = options.pop("archive"), options.pop("everyone"), options.pop("make_default")
    changes = {k: v for k, v in options.items() if v is not None and v != ()}
    if "groups" in changes:
        changes["allowed_groups"] = [g.strip() for g in changes.pop("groups").split(",") if g.strip()]
    if everyone:
        changes["allowed_groups"] = None
    if "node_selector" in changes:
        changes["node_selector"] = pairs(changes["node_selector"], "--node-selector")
    if make_default:
        changes["default"] = True
    if archive is not None:
        changes["archived"] = archive
    spec = run(lambda: TierSpec.model_validate({**current, **changes}))
    emit(ctx, run(lambda: plane.tiers.put_tier(caller, name, spec)), TIER_COLUMNS)


@tier.command("usage")
@click.option("--user", help="One user's usage.")
@click.option("--running", is_flag=True, help="Only what runs now.")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_ctx
def tier_usage(ctx: Context, user: str | None, running: bool, limit: int) -> None:
    """Who used which tier from when to when (the basis of cost reports)."""
    page = run(lambda: ctx.plane().tiers.list_usage(ctx.caller(), limit, 0, user, running))
    emit(ctx, page, USAGE_COLUMNS)
