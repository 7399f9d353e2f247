"""``himalia variables``: instance and project variables."""

import json
from pathlib import Path

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import fail, run


@click.group()
def variables() -> None:
    """Instance and project variables."""


@variables.command("get")
@click.option("--project", help="A project's variables instead of the instance's.")
@click.option("--resolved", is_flag=True, help="Merged over the instance's and expanded.")
@pass_ctx
def variables_get(ctx: Context, project: str | None, resolved: bool) -> None:
    service = ctx.plane().variables
    result = run(
        lambda: service.get_project(ctx.caller(), project, resolved) if project else service.get_instance(ctx.caller())
    )
    click.echo(json.dumps(result.variables, indent=2, sort_keys=True))


@variables.command("set")
@click.argument("document", required=False)
@click.option("--project")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="Read the JSON object from a file.")
@pass_ctx
def variables_set(ctx: Context, document: str | None, project: str | None, path: str | None) -> None:
    """Replace variables with a JSON object given inline or with --file."""
    from himalia.wire.common import Variables

    text = Path(path).read_text() if path else document
    if text is None:
        fail("give the variables as a JSON object, inline or with --file")
    try:
        value = json.loads(text)
    except ValueError as error:
        fail(f"not JSON: {error}")
    spec = run(lambda: Variables(variables=value))
    service = ctx.plane().variables
    result = run(
        lambda: (
            service.set_project(ctx.caller(), project, spec) if project else service.set_instance(ctx.caller(), spec)
        )
    )
    click.echo(json.dumps(result.variables, indent=2, sort_keys=True))
