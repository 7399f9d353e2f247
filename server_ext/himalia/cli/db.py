"""``himalia db``: the store's schema."""

from pathlib import Path

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import run


@click.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to this version's revision."""
    from himalia.core.home import home_problems_reported, require_writable_home
    from himalia.store.db import Database

    plane = ctx.new_plane()

    def upgrade() -> tuple[str | None, str | None]:
        with home_problems_reported(plane.home, plane.db_url):
            require_writable_home(Path(plane.home))
            database = Database(plane.db_url)
            before = database.current_revision()
            database.upgrade()
            after = database.current_revision()
            database.dispose()
        return before, after

    before, after = run(upgrade)
    click.echo(f"Store at revision {after}" + (f" (was {before})" if before != after else " (up to date)"))
