"""``himalia demo``: the demo project, its people and its warehouse."""

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import run


@click.command("demo")
@pass_ctx
def demo_command(ctx: Context) -> None:
    """Seed the demo project, its people and its warehouse (idempotent)."""
    from himalia.demo.seed import seed

    for line in run(lambda: seed(ctx.plane())):
        click.echo(line)
