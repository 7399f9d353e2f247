"""The ``himalia`` command: operate the control plane from the machine that holds its store.

Commands act as the operator (full rights, recorded in the audit trail as ``cli:<os user>``)
unless ``--as LOGIN`` makes them act as a user, with exactly that user's permissions. Output
is a table for people and JSON with ``--json``; any refusal is one line on stderr and exit 1.
"""

import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from himalia.core.errors import HimaliaError
from himalia.core.permissions import GlobalPermission, Profile, ProjectPermission
from himalia.hosts.controlplane import ControlPlane
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller
from himalia.wire.common import Variables
from himalia.wire.data import AccessSpec, CreateConnection, CreateDataset
from himalia.wire.identity import CreateGroup, CreateProject, CreateToken, CreateUser, SetGrant

stdout = Console()
stderr = Console(stderr=True)


@dataclass
class Context:
    home: str | None
    db_url: str | None
    as_user: str | None
    json: bool
    _plane: ControlPlane | None = None

    def plane(self) -> ControlPlane:
        if self._plane is None:
            config: dict[str, Any] = {}
            if self.home:
                config["home"] = self.home
            if self.db_url:
                config["db_url"] = self.db_url
            plane = ControlPlane(**config)
            try:
                plane.start()
            except HimaliaError as error:  # a home it cannot write, a schema to upgrade: one line
                fail(error.message)
            self._plane = plane
        return self._plane

    def caller(self) -> Caller:
        if self.as_user:
            return self.plane().users.caller_for(self.as_user, client_address="cli")
        return Caller.operator(f"cli:{getpass.getuser()}")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run(verb: Callable[[], Any]) -> Any:
    try:
        return verb()
    except HimaliaError as error:
        named = error.field and error.field not in error.message
        fail(error.message + (f" (field: {error.field})" if named else ""))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{where}: {first['msg']}" if where else first["msg"])


def emit(ctx: Context, value: Any, columns: Iterable[str] = ()) -> None:
    """Print a model, a page or a list: JSON for scripts, a table for people."""
    data: Any
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        data = value
    if ctx.json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    rows = data["items"] if isinstance(data, dict) and "items" in data else data
    if isinstance(rows, dict):
        rows = [rows]
    columns = list(columns) or (list(rows[0]) if rows else [])
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    stdout.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(k for k, v in value.items() if v is True) or json.dumps(value)
    return str(value)


def _pairs(values: Iterable[str], option: str) -> dict[str, str]:
    result = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"{option} takes NAME=VALUE, not '{item}'")
        result[name] = value
    return result


def _access(value: str | None) -> AccessSpec:
    """'nobody', 'everyone' or comma-separated group names; nothing given means nobody but the owner."""
    if value in {None, "", "nobody"}:
        return AccessSpec(mode="nobody")
    if value == "everyone":
        return AccessSpec(mode="everyone")
    return AccessSpec(mode="groups", groups=[g for g in (value or "").split(",") if g])


pass_ctx = click.make_pass_decorator(Context)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` after the command too (``himalia metrics compute P D --json``), as before it."""

    def enable(context: click.Context, _parameter: click.Parameter, value: bool) -> None:
        if value:
            context.ensure_object(Context).json = True

    return click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=enable, help="Print JSON instead of tables."
    )(command)


PAGE = 500


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar="HIMALIA_HOME", help="Data folder (SQLite store and key files).")
@click.option("--db-url", envvar="HIMALIA_DB_URL", help="SQLAlchemy URL of the store.")
@click.option("--as", "as_user", metavar="LOGIN", help="Act as this user, with their permissions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="himalia")
@click.pass_context
def main(context: click.Context, home: str | None, db_url: str | None, as_user: str | None, as_json: bool) -> None:
    """Himalia control plane."""
    context.obj = Context(home, db_url, as_user, as_json)
    context.call_on_close(lambda: context.obj._plane and context.obj._plane.stop())


# -- db -------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to this version's revision."""
    plane = ControlPlane(**{k: v for k, v in {"home": ctx.home, "db_url": ctx.db_url}.items() if v})
    from himalia.core.home import home_problems_reported, require_writable_home
    from himalia.store.db import Database

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


# -- users and groups -----------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Users and service accounts."""


@user.command("add")
@click.argument("login")
@click.option("--display-name", default="")
@click.option("--email", default="")
@click.option("--profile", type=click.Choice([p.value for p in Profile]), default="analyst")
@click.option("--service", is_flag=True, help="A service account (for CI systems), not a person.")
@click.option("--group", "groups", multiple=True, help="Add to this group (repeatable).")
@pass_ctx
def user_add(
    ctx: Context,
    login: str,
    display_name: str,
    email: str,
    profile: str,
    service: bool,
    groups: tuple[str, ...],
) -> None:
    """Create a user."""
    spec = run(
        lambda: CreateUser(
            login=login,
            display_name=display_name,
            email=email,
            profile=profile,
            kind="service" if service else "user",
            groups=list(groups),
        )
    )
    emit(
        ctx,
        run(lambda: ctx.plane().users.create_user(ctx.caller(), spec)),
        ["login", "display_name", "profile", "kind", "groups"],
    )


@user.command("list")
@pass_ctx
def user_list(ctx: Context) -> None:
    emit(
        ctx,
        run(lambda: ctx.plane().users.list_users(ctx.caller(), PAGE, 0)),
        ["login", "display_name", "email", "profile", "kind", "active", "groups"],
    )


@main.group()
def group() -> None:
    """Groups and their global permissions."""


@group.command("add")
@click.argument("name")
@click.option("--permission", "permissions", multiple=True, type=click.Choice([p.value for p in GlobalPermission]))
@click.option("--description", default="")
@pass_ctx
def group_add(ctx: Context, name: str, permissions: tuple[str, ...], description: str) -> None:
    """Create a group."""
    spec = run(lambda: CreateGroup(name=name, description=description, permissions=list(permissions)))
    emit(
        ctx,
        run(lambda: ctx.plane().users.create_group(ctx.caller(), spec)),
        ["name", "permissions", "member_count"],
    )


@group.command("add-member")
@click.argument("name")
@click.argument("login")
@pass_ctx
def group_add_member(ctx: Context, name: str, login: str) -> None:
    emit(ctx, run(lambda: ctx.plane().users.add_member(ctx.caller(), name, login)), ["name", "members"])


@group.command("list")
@pass_ctx
def group_list(ctx: Context) -> None:
    emit(
        ctx,
        run(lambda: ctx.plane().users.list_groups(ctx.caller(), PAGE, 0)),
        ["name", "permissions", "member_count", "description"],
    )


# -- tokens ---------------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--user", "login", required=True)
@click.option("--name", default="")
@click.option("--expires-in-days", type=int)
@click.option("--project", help="Restrict the token to this project.")
@pass_ctx
def token_create(ctx: Context, login: str, name: str, expires_in_days: int | None, project: str | None) -> None:
    """Issue a token; it is printed once."""
    spec = run(lambda: CreateToken(user=login, name=name, expires_in_days=expires_in_days, project=project))
    created = run(lambda: ctx.plane().tokens.create_token(ctx.caller(), spec))
    if ctx.json:
        emit(ctx, created)
    else:
        click.echo(created.token)


# -- projects -------------------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Projects and their grants."""


@project.command("create")
@click.argument("key")
@click.option("--name", required=True)
@click.option("--description", default="")
@click.option("--owner", help="Owner login (defaults to --as).")
@click.option("--tag", "tags", multiple=True)
@pass_ctx
def project_create(
    ctx: Context, key: str, name: str, description: str, owner: str | None, tags: tuple[str, ...]
) -> None:
    spec = run(lambda: CreateProject(key=key, name=name, description=description, owner=owner, tags=list(tags)))
    emit(
        ctx,
        run(lambda: ctx.plane().projects.create_project(ctx.caller(), spec)),
        ["key", "name", "owner", "tags", "status"],
    )


@project.command("list")
@click.option("--search")
@click.option("--tag")
@pass_ctx
def project_list(ctx: Context, search: str | None, tag: str | None) -> None:
    page = run(lambda: ctx.plane().projects.list_projects(ctx.caller(), PAGE, 0, search, tag))
    emit(ctx, page, ["key", "name", "owner", "tags", "status", "my_permissions"])


@project.command("grant")
@click.argument("key")
@click.option("--group", "group_name")
@click.option("--user", "login")
@click.option("--preset", type=click.Choice(["reader", "launcher", "contributor", "admin"]))
@click.option("--permission", "permissions", multiple=True, type=click.Choice([p.value for p in ProjectPermission]))
@pass_ctx
def project_grant(
    ctx: Context,
    key: str,
    group_name: str | None,
    login: str | None,
    preset: str | None,
    permissions: tuple[str, ...],
) -> None:
    """Set what a group or user holds on a project (a preset or permissions)."""
    spec = run(lambda: SetGrant(group=group_name, user=login, preset=preset, permissions=list(permissions) or None))
    emit(
        ctx,
        run(lambda: ctx.plane().projects.set_grant(ctx.caller(), key, spec)),
        ["principal_type", "principal", "preset", "permissions"],
    )


@project.command("grants")
@click.argument("key")
@pass_ctx
def project_grants(ctx: Context, key: str) -> None:
    emit(
        ctx,
        run(lambda: ctx.plane().projects.list_grants(ctx.caller(), key)),
        ["principal_type", "principal", "preset", "permissions"],
    )


# -- connections ----------------------------------------------------------------------------------


@main.group()
def connection() -> None:
    """Data connections."""


@connection.command("create")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(["sql", "files"]), required=True)
@click.option("--url", required=True, help="SQLAlchemy URL without password, or fsspec URL.")
@click.option("--description", default="")
@click.option("--param", "params", multiple=True, help="Extra non-secret NAME=VALUE.")
@click.option("--secret", "secrets", multiple=True, help="NAME=VALUE (visible in your shell history).")
@click.option("--secret-env", "secret_envs", multiple=True, help="NAME=ENVVAR: take the secret from the environment.")
@click.option("--per-user", is_flag=True, help="Each user stores their own credentials.")
@click.option("--allow-write", is_flag=True)
@click.option("--usable-by", help="'everyone' or comma-separated groups (default: only the owner).")
@click.option("--readable-by", help="'nobody' (default), 'everyone' or comma-separated groups.")
@pass_ctx
def connection_create(
    ctx: Context,
    name: str,
    kind: str,
    url: str,
    description: str,
    params: tuple[str, ...],
    secrets: tuple[str, ...],
    secret_envs: tuple[str, ...],
    per_user: bool,
    allow_write: bool,
    usable_by: str | None,
    readable_by: str | None,
) -> None:
    """Create a connection owned by --as LOGIN."""
    if not ctx.as_user:
        fail("a connection needs an owner: run it with --as LOGIN")
    values = _pairs(secrets, "--secret")
    for secret_name, variable in _pairs(secret_envs, "--secret-env").items():
        if variable not in os.environ:
            fail(f"--secret-env {secret_name}: ${variable} is not set")
        values[secret_name] = os.environ[variable]
    spec = run(
        lambda: CreateConnection(
            name=name,
            type=kind,
            description=description,
            params={"url": url, **_pairs(params, "--param")},
            secrets=values,
            credentials_mode="per_user" if per_user else "shared",
            allow_write=allow_write,
            usable_by=_access(usable_by),
            details_readable_by=_access(readable_by),
        )
    )
    emit(
        ctx,
        run(lambda: ctx.plane().connections.create_connection(ctx.caller(), spec)),
        ["name", "type", "owner", "credentials_mode", "allow_write"],
    )


@connection.command("list")
@pass_ctx
def connection_list(ctx: Context) -> None:
    page = run(lambda: ctx.plane().connections.list_connections(ctx.caller(), PAGE, 0))
    emit(ctx, page, ["name", "type", "owner", "credentials_mode", "allow_write", "can_use", "can_read_details"])


@connection.command("test")
@click.argument("name")
@pass_ctx
def connection_test(ctx: Context, name: str) -> None:
    """Connect for real; exit 1 when it fails."""
    result = run(lambda: ctx.plane().connections.test_connection(ctx.caller(), name))
    emit(ctx, result, ["ok", "message", "elapsed_ms"])
    if not result.ok:
        sys.exit(1)


# -- variables ------------------------------------------------------------------------------------


@main.group()
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


# -- audit ----------------------------------------------------------------------------------------


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@pass_ctx
def audit_verify(ctx: Context) -> None:
    """Check the hash chain; exit 1 and name every entry that was edited, deleted or inserted."""
    with stderr.status("Verifying the audit chain..."):
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


# -- secrets, serve, demo -------------------------------------------------------------------------


@main.group()
def secrets() -> None:
    """Encryption of connection secrets."""


@secrets.command("rotate")
@pass_ctx
def secrets_rotate(ctx: Context) -> None:
    """Re-encrypt every stored secret with the first configured key."""
    count = run(lambda: ctx.plane().connections.rotate_keys(ctx.caller()))
    click.echo(f"Re-encrypted {count} secret sets with the current key.")


@main.command("serve")
@click.option("--ip", help="Default: 127.0.0.1, or the host of $JUPYTERHUB_SERVICE_URL under JupyterHub.")
@click.option("--port", type=int, help="Default: 8765, or the port of $JUPYTERHUB_SERVICE_URL under JupyterHub.")
@click.option("--base-url", default="/", show_default=True, help="Ignored under JupyterHub (the service prefix).")
@click.option(
    "--hub/--no-hub",
    default=None,
    help="Run as a JupyterHub service (default: when started by JupyterHub, i.e. $JUPYTERHUB_API_TOKEN is set).",
)
@pass_ctx
def serve_command(ctx: Context, ip: str | None, port: int | None, base_url: str, hub: bool | None) -> None:
    """Serve the REST API on its own: Himalia tokens, and JupyterHub's identities as a hub service."""
    from urllib.parse import urlsplit

    from himalia.hosts.server import serve

    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    if hub is None:
        hub = bool(os.environ.get("JUPYTERHUB_API_TOKEN"))
    service_url = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "")) if hub else None
    ip = ip or (service_url.hostname if service_url and service_url.hostname else "127.0.0.1")
    port = port or (service_url.port if service_url and service_url.port else 8765)
    plane = run(ctx.plane)
    run(lambda: plane.trusted_proxies)  # a misconfigured proxy list is one line, not a traceback
    asyncio.run(serve(plane, ip, port, base_url, hub=hub))


# -- hardware tiers ---------------------------------------------------------------------------------

TIER_COLUMNS = (
    *("name", "display_name", "cpu_request", "cpu_limit", "memory_limit", "gpus", "allowed_groups"),
    *("max_servers_per_user", "max_servers", "cost_per_hour", "default", "archived", "running_servers"),
)


@main.group()
def tier() -> None:
    """Hardware tiers: changes apply to the next spawn form, no hub redeploy."""


@tier.command("list")
@click.option("--user", help="The tiers this user may choose.")
@click.option("--archived", is_flag=True, help="Include archived tiers.")
@json_option
@pass_ctx
def tier_list(ctx: Context, user: str | None, archived: bool) -> None:
    emit(ctx, run(lambda: ctx.plane().tiers.list_tiers(ctx.caller(), user, archived)), TIER_COLUMNS)


@tier.command("show")
@click.argument("name")
@json_option
@pass_ctx
def tier_show(ctx: Context, name: str) -> None:
    emit(ctx, run(lambda: ctx.plane().tiers.get_tier(ctx.caller(), name)), TIER_COLUMNS)


@tier.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def tier_apply(ctx: Context, path: Path) -> None:
    """Create or replace every tier of a tiers file (the format of hub_config/tiers.yaml)."""
    from himalia.compute.tiers import load_tiers_file

    plane, caller = ctx.plane(), ctx.caller()
    for name, spec in run(lambda: load_tiers_file(path)).items():
        run(partial(plane.tiers.put_tier, caller, name, spec))
        click.echo(f"applied tier {name}")


@tier.command("set")
@click.argument("name")
@click.option("--display-name")
@click.option("--description")
@click.option("--cpu-request", type=float)
@click.option("--cpu-limit", type=float)
@click.option("--memory-request", help="Bytes or a quantity: 2Gi, 512Mi, 8G.")
@click.option("--memory-limit", help="Bytes or a quantity: 2Gi, 512Mi, 8G.")
@click.option("--gpus", type=int)
@click.option("--gpu-resource")
@click.option("--node-selector", "node_selector", multiple=True, metavar="LABEL=VALUE", help="Repeatable.")
@click.option("--shm-size", help="Bytes or a quantity.")
@click.option("--cost-per-hour", type=float)
@click.option("--groups", help="Comma-separated groups allowed to use it.")
@click.option("--everyone", is_flag=True, help="Open it to everyone.")
@click.option("--max-servers-per-user", type=int)
@click.option("--max-servers", type=int)
@click.option("--default", "make_default", is_flag=True, help="Preselect it in the spawn form.")
@click.option("--archive/--unarchive", default=None, help="Offer it to nobody / again.")
@json_option
@pass_ctx
def tier_set(ctx: Context, name: str, **options: Any) -> None:
    """Create a tier or change the given settings of one, keeping the others."""
    from himalia.core.errors import NotFound
    from himalia.wire.compute import TierSpec

    plane, caller = ctx.plane(), ctx.caller()
    try:
        current = plane.tiers.get_tier(caller, name).model_dump(include=set(TierSpec.model_fields))
    except NotFound:
        current = {}
    archive, everyone, make_default = options.pop("archive"), options.pop("everyone"), options.pop("make_default")
    changes = {k: v for k, v in options.items() if v is not None and v != ()}
    if "groups" in changes:
        changes["allowed_groups"] = [g.strip() for g in changes.pop("groups").split(",") if g.strip()]
    if everyone:
        changes["allowed_groups"] = None
    if "node_selector" in changes:
        changes["node_selector"] = _pairs(changes["node_selector"], "--node-selector")
    if make_default:
        changes["default"] = True
    if archive is not None:
        changes["archived"] = archive
    spec = run(lambda: TierSpec.model_validate({**current, **changes}))
    emit(ctx, run(lambda: plane.tiers.put_tier(caller, name, spec)), TIER_COLUMNS)


@tier.command("usage")
@click.option("--user", help="One user's usage.")
@click.option("--running", is_flag=True, help="Only what runs now.")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_ctx
def tier_usage(ctx: Context, user: str | None, running: bool, limit: int) -> None:
    """Who used which tier from when to when (the basis of cost reports)."""
    page = run(lambda: ctx.plane().tiers.list_usage(ctx.caller(), limit, 0, user, running))
    emit(ctx, page, ("id", "user", "tier", "kind", "server_name", "run_id", "cost_per_hour", "started_at", "ended_at"))


@main.command("openapi")
def openapi_command() -> None:
    """Print the REST API's OpenAPI document (the lab extension's wire types are generated from it)."""
    from himalia.api import API_PREFIX
    from himalia.api.openapi import document_for

    click.echo(json.dumps(document_for(API_PREFIX), indent=1, sort_keys=True))


@main.command("demo")
@pass_ctx
def demo_command(ctx: Context) -> None:
    """Seed the demo project, its people and its warehouse (idempotent)."""
    from himalia.demo.seed import seed

    for line in run(lambda: seed(ctx.plane())):
        click.echo(line)


# -- datasets, metrics and checks -----------------------------------------------------------------


@main.group()
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
) -> None:
    """Define a dataset; its schema is read at once."""
    fields: dict[str, Any] = {"table": table, "db_schema": db_schema, "query": query, "path": path, "format": fmt}
    if probes:
        fields["probes"] = list(probes)
    spec = run(
        lambda: CreateDataset(
            name=name,
            connection=connection,
            description=description,
            **{k: v for k, v in fields.items() if v is not None},
        )
    )
    created = run(lambda: ctx.plane().datasets.create_dataset(ctx.caller(), project_key, spec))
    emit(ctx, created, ["name", "connection", "kind", "probes"])


@dataset.command("list")
@click.argument("project_key")
@json_option
@pass_ctx
def dataset_list(ctx: Context, project_key: str) -> None:
    page = run(lambda: ctx.plane().datasets.list_datasets(ctx.caller(), project_key, PAGE, 0))
    emit(ctx, page, ["name", "connection", "kind", "table", "path", "probes", "schema_refreshed_at"])


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


@main.group()
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
    with stderr.status(f"Computing metrics of {project_key}/{name}..."):
        computed = run(lambda: ctx.plane().metrics.compute(ctx.caller(), project_key, name, list(probes) or None))
    if ctx.json:
        emit(ctx, computed)
        return
    emit(ctx, [{"metric": k, "value": v} for k, v in computed.values.items()], ["metric", "value"])


OUTCOME_STYLES = {"OK": "green", "WARNING": "yellow", "ERROR": "red", "EMPTY": "bright_black"}


@main.group()
def checks() -> None:
    """Checks of datasets."""


@checks.command("run")
@click.argument("project_key")
@click.argument("name")
@json_option
@pass_ctx
def checks_run(ctx: Context, project_key: str, name: str) -> None:
    """Run every check of a dataset; exit 0 when all are OK or WARNING, 1 when any is ERROR."""
    with stderr.status(f"Running the checks of {project_key}/{name}..."):
        outcome = run(lambda: ctx.plane().checks.run_checks(ctx.caller(), project_key, name))
    if ctx.json:
        emit(ctx, outcome)
    else:
        table = Table("check", "outcome", "value", "message")
        for result in outcome.results:
            style = OUTCOME_STYLES[result.outcome]
            table.add_row(result.check, f"[{style}]{result.outcome}[/{style}]", _cell(result.value), result.message)
        stdout.print(table)
    if outcome.outcome == "ERROR":
        sys.exit(1)


@main.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def apply_command(ctx: Context, path: str) -> None:
    """Create or update datasets and checks from a YAML file (idempotent)."""
    from himalia.data.manifest import apply_manifest, load_manifest

    manifest = run(lambda: load_manifest(Path(path).read_text(), path))
    for line in run(lambda: apply_manifest(ctx.plane(), ctx.caller(), manifest, path)):
        click.echo(line)


# -- scenarios ------------------------------------------------------------------------------------


@main.group()
def scenario() -> None:
    """Scenarios: steps, triggers and reporters."""


@scenario.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def scenario_validate(path: str) -> None:
    """Check a scenario file; exit 1 naming the line and field of the first mistake."""
    from himalia.scenarios.definitions import load_scenario

    definition = run(lambda: load_scenario(Path(path).read_text(), path))
    summary = f"{path}: scenario '{definition.id}' is valid: {len(definition.steps)} steps"
    summary += f", {len(definition.triggers)} triggers, {len(definition.reporters)} reporters"
    click.echo(summary)
    for trigger in definition.triggers:
        if trigger.type == "time":
            fire = trigger.next_fire(datetime.now(UTC))
            click.echo(f"  next time trigger: {fire.isoformat()} ({trigger.expression()} in {trigger.timezone})")


@scenario.command("schema")
def scenario_schema() -> None:
    """Print the JSON schema of scenario files."""
    from himalia.scenarios.definitions import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def _read_notebooks(definition: Any, folder: Path) -> dict[str, Any]:
    """The notebooks a scenario runs, read where the CLI stands, so the server snapshots these."""
    found = {}
    for step in definition.steps:
        if step.type == "notebook" and (folder / step.notebook).is_file():
            found[step.notebook] = json.loads((folder / step.notebook).read_text(encoding="utf-8"))
    return found


@scenario.command("apply")
@click.argument("project_key")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--notebooks",
    "folder",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder the notebook paths of the steps are relative to.",
)
@pass_ctx
def scenario_apply(ctx: Context, project_key: str, path: str, folder: str) -> None:
    """Create or update a scenario from its YAML file, snapshotting its notebooks."""
    from himalia.scenarios.definitions import load_scenario
    from himalia.wire.scenarios import SaveScenario

    text = Path(path).read_text()
    definition = run(lambda: load_scenario(text, path))
    spec = SaveScenario(yaml=text, notebooks=_read_notebooks(definition, Path(folder)))
    plane = ctx.plane()
    saved = run(lambda: plane.scenarios.save_scenario(ctx.caller(), project_key, spec, scenario_id=definition.id))
    click.echo(f"saved scenario {project_key}/{saved.id} revision {saved.revision} (runs as {saved.run_as})")
    for notebook, snapshot in saved.notebooks.items():
        click.echo(f"  {notebook}: snapshot {snapshot[:12]}")
    if saved.next_fire_at:
        click.echo(f"  next fire: {saved.next_fire_at.isoformat()}")


@scenario.command("list")
@click.argument("project_key")
@pass_ctx
def scenario_list(ctx: Context, project_key: str) -> None:
    """A project's scenarios, their last outcome and next fire time."""
    page = run(lambda: ctx.plane().scenarios.list_scenarios(ctx.caller(), project_key, 500, 0))
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "active": s.active,
            "run_as": s.run_as,
            "last_run": f"#{s.last_run.id} {s.last_run.state}" if s.last_run else "",
            "next_fire_at": s.next_fire_at.isoformat(timespec="minutes") if s.next_fire_at else "",
        }
        for s in page.items
    ]
    emit(ctx, page if ctx.json else rows, ["id", "name", "active", "run_as", "last_run", "next_fire_at"])


@scenario.command("export")
@click.argument("project_key")
@click.argument("scenario_id")
@pass_ctx
def scenario_export(ctx: Context, project_key: str, scenario_id: str) -> None:
    """Print a scenario as YAML."""
    click.echo(run(lambda: ctx.plane().scenarios.export_yaml(ctx.caller(), project_key, scenario_id)), nl=False)


def _typed(plane: ControlPlane, caller: Caller, key: str, scenario_id: str, pairs: dict[str, str]) -> dict[str, Any]:
    """``-p name=value`` pairs read as the types the notebooks declare."""
    from himalia.scenarios.snapshots import coerce_text

    declared = {
        p.name: p for step in plane.scenarios.parameters(caller, key, scenario_id).steps for p in step.parameters
    }
    return {
        name: coerce_text(declared[name].model_dump() if name in declared else None, text, f"parameters.{name}")
        for name, text in pairs.items()
    }


@scenario.command("run")
@click.argument("project_key")
@click.argument("scenario_id")
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE", help="A notebook parameter.")
@click.option("-v", "--variable", "variables", multiple=True, metavar="NAME=VALUE", help="Override a variable.")
@click.option("--wait", is_flag=True, help="Run it here and follow it; exit 1 unless it succeeds or warns.")
@pass_ctx
def scenario_run(
    ctx: Context,
    project_key: str,
    scenario_id: str,
    parameters: tuple[str, ...],
    variables: tuple[str, ...],
    wait: bool,
) -> None:
    """Start a run. Without --wait a serving control plane picks it up."""
    import yaml

    from himalia.wire.scenarios import RunRequest

    plane, caller = ctx.plane(), ctx.caller()
    typed = run(lambda: _typed(plane, caller, project_key, scenario_id, _pairs(parameters, "--parameter")))
    values = {k: yaml.safe_load(v) for k, v in _pairs(variables, "--variable").items()}
    if not wait:
        started = run(
            lambda: plane.runs.request_run(
                caller, project_key, scenario_id, RunRequest(parameters=typed, variables=values)
            )
        )
        click.echo(f"queued run #{started.id} of {project_key}/{scenario_id} ({started.state})")
        return
    from himalia.hosts.server import BackgroundAPI

    api = BackgroundAPI(plane)
    plane.api_url = api.start()
    engine = plane.start_engine(schedule=False, only=set())
    try:
        started = run(
            lambda: plane.runs.request_run(
                caller, project_key, scenario_id, RunRequest(parameters=typed, variables=values)
            )
        )
        assert engine.only is not None
        engine.only.add(started.id)
        engine.wake()
        final = _follow(plane, caller, project_key, scenario_id, started.id)
    finally:
        api.stop()
    if ctx.json:
        emit(ctx, final)
    else:
        _print_steps(final)
    sys.exit(0 if final.state in ("succeeded", "warning") else 1)


def _follow(plane: ControlPlane, caller: Caller, key: str, scenario_id: str, run_id: int) -> Any:
    """Show the run's steps as a progress bar until it ends."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=False) as progress:
        current = plane.runs.get_run(caller, key, scenario_id, run_id)
        task = progress.add_task(f"run #{run_id}: {current.state}", total=len(current.steps))
        while True:
            current = plane.runs.get_run(caller, key, scenario_id, run_id)
            done = sum(s.state not in ("pending", "running") for s in current.steps)
            running = [s.name for s in current.steps if s.state == "running"]
            label = f"run #{run_id}: " + (f"{running[0]}" if running else current.state)
            progress.update(task, completed=done, description=label)
            if current.state not in ("queued", "running"):
                return current
            time.sleep(0.3)


def _print_steps(final: Any) -> None:
    table = Table("step", "type", "state", "message")
    for step in final.steps:
        table.add_row(step.name, step.type, step.state, step.message[:200])
    stdout.print(table)
    click.echo(f"run #{final.id}: {final.state}" + (f" — {final.message}" if final.message else ""))


@scenario.command("runs")
@click.argument("project_key")
@click.argument("scenario_id")
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def scenario_runs(ctx: Context, project_key: str, scenario_id: str, limit: int) -> None:
    """A scenario's latest runs."""
    page = run(lambda: ctx.plane().runs.list_runs(ctx.caller(), project_key, scenario_id, limit, 0))
    rows = [
        {
            "id": r.id,
            "state": r.state,
            "trigger": r.trigger,
            "requested_by": r.requested_by,
            "started_at": r.started_at.isoformat(timespec="seconds") if r.started_at else "",
            "ended_at": r.ended_at.isoformat(timespec="seconds") if r.ended_at else "",
            "message": r.message,
        }
        for r in page.items
    ]
    emit(
        ctx, page if ctx.json else rows, ["id", "state", "trigger", "requested_by", "started_at", "ended_at", "message"]
    )


@scenario.command("log")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("run_id", type=int)
@pass_ctx
def scenario_log(ctx: Context, project_key: str, scenario_id: str, run_id: int) -> None:
    """Print a run's log."""
    text, _ = run(lambda: ctx.plane().runs.read_log(ctx.caller(), project_key, scenario_id, run_id))
    click.echo(text, nl=False)


@scenario.command("abort")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("run_id", type=int)
@pass_ctx
def scenario_abort(ctx: Context, project_key: str, scenario_id: str, run_id: int) -> None:
    """Abort a queued or running run (the process running it kills its kernels)."""
    aborted = run(lambda: ctx.plane().runs.abort(ctx.caller(), project_key, scenario_id, run_id))
    click.echo(f"run #{run_id}: {'aborted' if aborted.state == 'aborted' else 'abort requested'}")
