"""``himalia audit``: verify and export the audit trail."""

import sys

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
@click.option("--action", help="An action, or a prefix such as 'project'.")
@click.option("--project")
@click.option("--object-type")
@click.option("--object-id")
@click.option("--since", help="From this time on: 2026-12-02, 2026-12-02T10:00:00+01:00 (UTC unless it says).")
@click.option("--until", help="Before this time (UTC unless it says).")
@pass_ctx
def audit_export(ctx: Context, fmt: str, output: str | None, **filters: str | None) -> None:
    """Export entries, oldest first, filtered as GET /audit/export filters them."""
    from himalia.api.audit import AuditFilterQuery

    query = run(lambda: AuditFilterQuery.model_validate({k: v for k, v in filters.items() if v is not None}))
    lines = ctx.plane().audit.export(ctx.caller(), query.to_filter(), fmt)
    handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        run(lambda: handle.writelines(lines))
    finally:
        if output:
            handle.close()
