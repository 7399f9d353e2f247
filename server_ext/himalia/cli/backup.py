"""``himalia backup`` and ``himalia restore``: the store, never the keys."""

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import fail, run, stderr

if TYPE_CHECKING:
    from himalia.controlplane import ControlPlane


def _keys_reminder(plane: "ControlPlane") -> str:
    home = Path(plane.home)
    files = ", ".join(str(home / name) for name in ("secret.key", "audit.key", "bundle-signing.key"))
    return (
        "The keys are not in the backup (with them it would open every connection secret): keep them "
        f"apart, in {files} unless configured otherwise ($HIMALIA_SECRET_KEYS, $HIMALIA_AUDIT_KEY, "
        "$HIMALIA_BUNDLE_SIGNING_KEY). Without the secret keys a restored store's secrets cannot be read."
    )


def _progress(label: str):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("pages"), console=stderr())


@click.command("backup")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File (default: himalia-<UTC time>.sqlite).")
@pass_ctx
def backup_command(ctx: Context, output: str | None) -> None:
    """Copy the store consistently while the platform runs (SQLite; PostgreSQL: says how)."""
    from himalia.operations.backup import back_up, pg_dump_advice, sqlite_file
    from himalia.store.db import Database

    plane = ctx.new_plane()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    source = run(lambda: sqlite_file(plane.db_url))
    if source is None:
        database = Database(plane.db_url)
        run(database.check_revision)
        database.dispose()
        click.echo(pg_dump_advice(plane.db_url, output or f"himalia-{stamp}.dump"))
        click.echo(f"The store is at revision {database.head_revision()}, this Himalia's.")
        click.echo(_keys_reminder(plane))
        return
    if not source.exists():
        fail(f"There is no store at {source}.")
    database = Database(plane.db_url)
    target = Path(output or f"himalia-{stamp}.sqlite")
    if target.exists():
        fail(f"{target} exists: name another file with -o.")
    with _progress("backing up") as progress:
        task = progress.add_task("", total=None)
        result = run(
            lambda: back_up(
                database, source, target, lambda done, total: progress.update(task, completed=done, total=total)
            )
        )
    database.dispose()
    click.echo(f"Backed up {source} to {result.path} ({result.size:,} bytes, revision {result.revision}).")
    click.echo(_keys_reminder(plane))


@click.command("restore")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def restore_command(ctx: Context, backup: str) -> None:
    """Replace the store with a backup; refused while a platform runs on it or for a newer Himalia's."""
    from himalia.operations.backup import restore, sqlite_file
    from himalia.store.db import Database

    plane = ctx.new_plane()
    target = run(lambda: sqlite_file(plane.db_url))
    if target is None:
        fail("The store is PostgreSQL: restore it with pg_restore (see `himalia backup`).")
    target.parent.mkdir(parents=True, exist_ok=True)
    database = Database(plane.db_url)
    with _progress("restoring") as progress:
        task = progress.add_task("", total=None)
        revision = run(
            lambda: restore(
                database,
                Path(backup),
                target,
                datetime.now(UTC),
                lambda done, total: progress.update(task, completed=done, total=total),
            )
        )
    database.dispose()
    click.echo(f"Restored {backup} to {target} (revision {revision}).")
    if revision != database.head_revision():
        click.echo(
            f"It is at an older revision than this Himalia's {database.head_revision()}: run `himalia db upgrade`."
        )
    head = Path(plane.audit_head_file) if plane.audit_head_file else None
    if head is not None and head.exists():
        aside = head.with_name(head.name + ".before-restore")
        head.replace(aside)
        click.echo(
            f"The audit head file named the newest entry before the restore; it is kept as {aside}, so that "
            "`himalia audit verify` checks the restored chain (compare the two to see what the restore undid)."
        )
    click.echo(_keys_reminder(plane))
