"""The ``himalia`` command: operate the control plane from the machine that holds its store.

Commands act as the operator (full rights, recorded in the audit trail as ``cli:<os user>``)
unless ``--as LOGIN`` makes them act as a user, with exactly that user's permissions. Output
is a table for people and JSON with ``--json``; any refusal is one line on stderr and exit 1.

One module per command group; each command imports the store, the services and the data
libraries when it runs, so that ``himalia --help`` stays instant.
"""

import click

from himalia.cli import (
    audit,
    backup,
    connections,
    datasets,
    db,
    demo,
    ops,
    projects,
    retention,
    scenarios,
    serve,
    tiers,
    tokens,
    users,
    variables,
)
from himalia.cli.bundles import bundle
from himalia.cli.context import CONFIG_HELP, Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", help="Data folder (SQLite store and key files). Default: $HIMALIA_HOME.")
@click.option("--db-url", help="SQLAlchemy URL of the store. Default: $HIMALIA_DB_URL.")
@click.option("--config", "config_file", metavar="FILE", help=CONFIG_HELP)
@click.option("--as", "as_user", metavar="LOGIN", help="Act as this user, with their permissions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="himalia")
@click.pass_context
def main(
    context: click.Context,
    home: str | None,
    db_url: str | None,
    config_file: str | None,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Himalia control plane."""
    context.obj = Context(home, db_url, as_user, as_json, config_file)
    context.call_on_close(lambda: context.obj._plane and context.obj._plane.stop())


for command in (
    db.db,
    users.user,
    users.group,
    tokens.token,
    projects.project,
    connections.connection,
    connections.secrets,
    variables.variables,
    audit.audit,
    datasets.dataset,
    datasets.metrics,
    datasets.checks,
    datasets.apply_command,
    scenarios.scenario,
    retention.retention,
    serve.serve_command,
    serve.openapi_command,
    tiers.tier,
    demo.demo_command,
    bundle,
    ops.ops,
    backup.backup_command,
    backup.restore_command,
):
    main.add_command(command)
