"""``himalia retention``: purge run artifacts and logs now, see a project's space, pin a run."""

import click

from himalia.cli.context import Context, json_option, pass_ctx
from himalia.cli.output import emit, run

#: How the space reads, largest unit first.
UNITS = (("GB", 10**9), ("MB", 10**6), ("kB", 10**3))


def size(value: int) -> str:
    """``12.3 MB``: bytes as people read them."""
    for unit, scale in UNITS:
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


@click.group()
def retention() -> None:
    """Retention of run artifacts and logs (Retention.keep_runs, keep_days; a scenario's retention)."""


@retention.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what would be purged, and purge nothing.")
@json_option
@pass_ctx
def retention_purge(ctx: Context, dry_run: bool) -> None:
    """Purge now what retention no longer keeps (administrators); the scheduler does it hourly."""
    report = run(lambda: ctx.plane().retention.purge(ctx.caller(), dry_run=dry_run))
    if ctx.json:
        emit(ctx, report)
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} the artifacts and logs of {report.runs} runs ({size(report.artifact_bytes + report.log_bytes)}), "
        f"{report.snapshots} notebook snapshots, {report.file_trees} file trees and {report.file_blobs} files "
        f"({size(report.snapshot_bytes)})"
    )


@retention.command("space")
@click.argument("project_key")
@json_option
@pass_ctx
def retention_space(ctx: Context, project_key: str) -> None:
    """The space PROJECT_KEY's runs and snapshots take in the store."""
    storage = run(lambda: ctx.plane().retention.storage(ctx.caller(), project_key))
    if ctx.json:
        emit(ctx, storage)
        return
    rows = [
        {"what": "run artifacts", "space": size(storage.artifact_bytes)},
        {"what": "run logs", "space": size(storage.log_bytes)},
        {"what": "notebook snapshots", "space": size(storage.snapshot_bytes)},
        {"what": "project files", "space": size(storage.file_bytes)},
    ]
    emit(ctx, rows)
    click.echo(f"{storage.runs} runs: {storage.pinned_runs} pinned, {storage.purged_runs} purged by retention")


@retention.command("pin")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("run_id", type=int)
@click.option("--unpin", is_flag=True, help="Let retention judge the run again.")
@pass_ctx
def retention_pin(ctx: Context, project_key: str, scenario_id: str, run_id: int, unpin: bool) -> None:
    """Keep run RUN_ID's artifacts and log whatever retention says."""
    run(lambda: ctx.plane().retention.pin(ctx.caller(), project_key, scenario_id, run_id, not unpin))
    click.echo(f"{'unpinned' if unpin else 'pinned'} run #{run_id} of {project_key}/{scenario_id}")
