"""``himalia ops``: the project's operations guide and the morning check, from the terminal."""

from pathlib import Path

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import run


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
