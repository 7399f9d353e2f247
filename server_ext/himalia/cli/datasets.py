"""``himalia dataset``, ``metrics``, ``checks`` and ``apply``: datasets, their metrics and checks."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from himalia.cli.context import PAGE, Context, json_option, pass_ctx
from himalia.cli.output import cell, emit, fail, print_table, run, stderr

LISTED = ["name", "connection", "kind", "table", "path", "probes", "freshness", "schema_refreshed_at"]


def freshness_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--freshness-column`` and ``--freshness-max-age``: how old the dataset's data may be."""
    command = click.option(
        "--freshness-max-age", help="How old its newest value may be, e.g. 26h, 90m, 2d (UTC when no zone)."
    )(command)
    return click.option(
        "--freshness-column",
        help="The timestamp column whose newest value tells the data's age (files: default, modification times).",
    )(command)


def freshness_text(freshness: dict[str, Any] | None) -> str:
    """``event_time within 26h``, ``files modified within 26h``, or nothing."""
    if not freshness:
        return ""
    return f"{freshness.get('column') or 'files modified'} within {freshness['max_age']}"


def emit_datasets(ctx: Context, value: Any) -> None:
    """Datasets as JSON for scripts, or a table whose freshness reads as words."""
    if ctx.json:
        emit(ctx, value)
        return
    from himalia.wire.common import Page

    items = value.items if isinstance(value, Page) else [value]
    rows = [
        {**item.model_dump(mode="json"), "freshness": freshness_text(item.freshness and item.freshness.model_dump())}
        for item in items
    ]
    emit(ctx, rows, LISTED)


@click.group()
def dataset() -> None:
    """Datasets of a project."""


@dataset.command("create")
@click.argument("project_key")
@click.argument("name")
@click.option("--connection", required=True)
@click.option("--table")
@click.option("--db-schema")
@click.option("--query")
@click.option("--path", help="Files below the connection's URL (globs allowed).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]))
@click.option(
    "--probe", "probes", multiple=True, help="Metrics to compute (repeatable), e.g. record_count, avg:amount."
)
@click.option("--description", default="")
@freshness_options
@json_option
@pass_ctx
def dataset_create(
    ctx: Context,
    project_key: str,
    name: str,
    connection: str,
    table: str | None,
    db_schema: str | None,
    query: str | None,
    path: str | None,
    fmt: str | None,
    probes: tuple[str, ...],
    description: str,
    freshness_column: str | None,
    freshness_max_age: str | None,
) -> None:
    """Define a dataset; its schema is read at once."""
    from himalia.wire.data import CreateDataset

    fields: dict[str, Any] = {"table": table, "db_schema": db_schema, "query": query, "path": path, "format": fmt}
    if probes:
        fields["probes"] = list(probes)
    if freshness_column is not None or freshness_max_age is not None:
        fields["freshness"] = {"column": freshness_column, "max_age": freshness_max_age}
    spec = run(
        lambda: CreateDataset(
            name=name,
            connection=connection,
            description=description,
            **{k: v for k, v in fields.items() if v is not None},
        )
    )
    created = run(lambda: ctx.plane().datasets.create_dataset(ctx.caller(), project_key, spec))
    emit_datasets(ctx, created)


@dataset.command("update")
@click.argument("project_key")
@click.argument("name")
@click.option("--description")
@click.option("--probe", "probes", multiple=True, help="Replace the metrics to compute (repeatable).")
@freshness_options
@click.option("--no-freshness", is_flag=True, help="Remove the declared freshness.")
@json_option
@pass_ctx
def dataset_update(
    ctx: Context,
    project_key: str,
    name: str,
    description: str | None,
    probes: tuple[str, ...],
    freshness_column: str | None,
    freshness_max_age: str | None,
    no_freshness: bool,
) -> None:
    """Change a dataset's description, probes or freshness; what is not given stays as it is."""
    from himalia.wire.data import UpdateDataset

    service = ctx.plane().datasets
    fields: dict[str, Any] = {"description": description, "probes": list(probes) or None}
    changes: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if no_freshness and (freshness_column or freshness_max_age):
        raise click.UsageError("--no-freshness goes without --freshness-column and --freshness-max-age")
    if no_freshness:
        changes["freshness"] = None
    elif freshness_column is not None or freshness_max_age is not None:
        current = run(lambda: service.get_dataset(ctx.caller(), project_key, name)).freshness
        changes["freshness"] = {
            "column": freshness_column or (current.column if current else None),
            "max_age": freshness_max_age or (current.max_age if current else None),
        }
    spec = run(lambda: UpdateDataset.model_validate(changes))
    emit_datasets(ctx, run(lambda: service.update_dataset(ctx.caller(), project_key, name, spec)))


@dataset.command("show")
@click.argument("project_key")
@click.argument("name")
@json_option
@pass_ctx
def dataset_show(ctx: Context, project_key: str, name: str) -> None:
    """A dataset's definition, with its declared freshness."""
    emit_datasets(ctx, run(lambda: ctx.plane().datasets.get_dataset(ctx.caller(), project_key, name)))


@dataset.command("list")
@click.argument("project_key")
@json_option
@pass_ctx
def dataset_list(ctx: Context, project_key: str) -> None:
    emit_datasets(ctx, run(lambda: ctx.plane().datasets.list_datasets(ctx.caller(), project_key, PAGE, 0)))


@dataset.command("schema")
@click.argument("project_key")
@click.argument("name")
@click.option("--refresh", is_flag=True, help="Read the columns from the source again.")
@json_option
@pass_ctx
def dataset_schema(ctx: Context, project_key: str, name: str, refresh: bool) -> None:
    service = ctx.plane().datasets
    schema = run(lambda: (service.refresh_schema if refresh else service.get_schema)(ctx.caller(), project_key, name))
    if ctx.json:
        emit(ctx, schema)
        return
    emit(ctx, [c.model_dump() for c in schema.columns or []], ["name", "type"])
    for change in schema.changes:
        click.echo(f"changed: {change}")


@click.group()
def metrics() -> None:
    """Metrics of datasets."""


@metrics.command("compute")
@click.argument("project_key")
@click.argument("name")
@click.option("--probe", "probes", multiple=True, help="Only these metrics (default: the dataset's).")
@json_option
@pass_ctx
def metrics_compute(ctx: Context, project_key: str, name: str, probes: tuple[str, ...]) -> None:
    """Compute metrics where the data lives and keep them in the history."""
    with stderr().status(f"Computing metrics of {project_key}/{name}..."):
        computed = run(lambda: ctx.plane().metrics.compute(ctx.caller(), project_key, name, list(probes) or None))
    if ctx.json:
        emit(ctx, computed)
        return
    emit(ctx, [{"metric": k, "value": v} for k, v in computed.values.items()], ["metric", "value"])


@click.group()
def checks() -> None:
    """Checks of datasets."""


@checks.command("run")
@click.argument("project_key")
@click.argument("name")
@json_option
@pass_ctx
def checks_run(ctx: Context, project_key: str, name: str) -> None:
    """Run every check of a dataset; exit 0 when all are OK or WARNING, 1 when any is ERROR.

    A control plane serving this home (`himalia serve`, a lab with the extension) is asked to run
    them, with the engines and columns it keeps; without one, this command runs them itself.
    """
    with stderr().status(f"Running the checks of {project_key}/{name}..."):
        outcome = _checks_run_served(ctx, project_key, name)
        if outcome is None:
            ran = run(lambda: ctx.plane().checks.run_checks(ctx.caller(), project_key, name))
            outcome = ran.model_dump(mode="json")
    if ctx.json:
        emit(ctx, outcome)
    else:
        rows = [[r["check"], r["outcome"], cell(r["value"]), r["message"]] for r in outcome["results"]]
        print_table(["check", "outcome", "value", "message"], rows)
        for result in outcome["results"]:
            sample = result.get("failing_rows")
            if sample:
                click.echo(f"\nRows breaking {sample['condition']} ({result['check']}, {len(sample['rows'])} shown):")
                print_table(sample["columns"], [[cell(value) for value in row] for row in sample["rows"]])
    if outcome["outcome"] == "ERROR":
        sys.exit(1)


def _checks_run_served(ctx: Context, project_key: str, name: str) -> dict[str, Any] | None:
    """The checks run by the control plane serving this home, as the API answers it; None when
    none serves it (or the one answering there serves another store)."""
    from urllib.parse import quote

    from himalia.cli.serving import MISDIRECTED, Refused

    serving = ctx.serving_plane()
    if serving is None:
        return None
    path = f"/projects/{quote(project_key, safe='')}/datasets/{quote(name, safe='')}/checks/run"
    try:
        answer: dict[str, Any] = serving.request("POST", path)
        return answer
    except Refused as refusal:
        if refusal.status != MISDIRECTED:
            fail(refusal.message)
        return None
    finally:
        serving.close()


@click.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def apply_command(ctx: Context, path: str) -> None:
    """Create or update datasets and checks from a YAML file (idempotent)."""
    from himalia.data.manifest import apply_manifest, load_manifest

    manifest = run(lambda: load_manifest(Path(path).read_text(), path))
    for line in run(lambda: apply_manifest(ctx.plane(), ctx.caller(), manifest, path)):
        click.echo(line)
