"""``himalia audit``: verify and export the audit trail."""

import sys
from datetime import UTC, datetime

import click

from himalia.cli.context import Context, pass_ctx
from himalia.cli.output import emit, run, stderr


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@pass_ctx
def audit_verify(ctx: Context) -> None:
    """Check the hash chain; exit 1 and name every entry that was edited, deleted or inserted."""
    with stderr().status("Verifying the audit chain..."):
        result = run(lambda: ctx.plane().audit.verify(ctx.caller()))
    if ctx.json:
        emit(ctx, result)
    elif result.ok:
        click.echo(f"OK: {result.entries} entries, chain intact.")
    else:
        for problem in result.problems:
            click.echo(f"TAMPERED: {problem}")
    if not result.ok:
        sys.exit(1)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout).")
@click.option("--actor")
@click.option("--action")
@click.option("--project")
@click.option("--since", type=click.DateTime())
@click.option("--until", type=click.DateTime())
@pass_ctx
def audit_export(
    ctx: Context,
    fmt: str,
    output: str | None,
    actor: str | None,
    action: str | None,
    project: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Export entries, oldest first."""
    from himalia.identity.audit import AuditFilter

    audit_filter = AuditFilter(
        actor=actor,
        action=action,
        project=project,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
    )
    lines = ctx.plane().audit.export(ctx.caller(), audit_filter, fmt)
    handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        run(lambda: handle.writelines(lines))
    finally:
        if output:
            handle.close()
