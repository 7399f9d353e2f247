"""``himalia connection`` and ``secrets``: data connections and the encryption of their secrets."""

import os
import sys
from typing import TYPE_CHECKING

import click

from himalia.cli.context import PAGE, Context, pairs, pass_ctx
from himalia.cli.output import emit, fail, run

if TYPE_CHECKING:
    from himalia.wire.data import AccessSpec

CONNECTION_COLUMNS = {
    "name": "name",
    "type": "type",
    "owner": "owner",
    "credentials": "credentials_mode",
    "writes": "allow_write",
}


def access(value: str | None) -> "AccessSpec":
    """'nobody', 'everyone' or comma-separated group names; nothing given means nobody but the owner."""
    from himalia.wire.data import AccessSpec

    if value in {None, "", "nobody"}:
        return AccessSpec(mode="nobody")
    if value == "everyone":
        return AccessSpec(mode="everyone")
    return AccessSpec(mode="groups", groups=[g for g in (value or "").split(",") if g])


@click.group()
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
    from himalia.wire.data import CreateConnection

    if not ctx.as_user:
        fail("a connection needs an owner: run it with --as LOGIN")
    values = pairs(secrets, "--secret")
    for secret_name, variable in pairs(secret_envs, "--secret-env").items():
        if variable not in os.environ:
            fail(f"--secret-env {secret_name}: ${variable} is not set")
        values[secret_name] = os.environ[variable]
    spec = run(
        lambda: CreateConnection(
            name=name,
            type=kind,
            description=description,
            params={"url": url, **pairs(params, "--param")},
            secrets=values,
            credentials_mode="per_user" if per_user else "shared",
            allow_write=allow_write,
            usable_by=access(usable_by),
            details_readable_by=access(readable_by),
        )
    )
    emit(
        ctx,
        run(lambda: ctx.plane().connections.create_connection(ctx.caller(), spec)),
        CONNECTION_COLUMNS,
    )


@connection.command("update")
@click.argument("name")
@click.option("--description")
@click.option("--url", help="SQLAlchemy URL without password, or fsspec URL.")
@click.option("--param", "params", multiple=True, help="Extra non-secret NAME=VALUE, added or replaced.")
@click.option("--secret", "secret_names", multiple=True, metavar="NAME", help="Asked for, not echoed (repeatable).")
@click.option("--secret-stdin", "stdin_name", metavar="NAME", help="A secret read from standard input.")
@click.option("--no-secrets", is_flag=True, help="Remove the stored secrets.")
@click.option("--per-user/--shared", default=None, help="Each user stores their own credentials / one set for all.")
@click.option("--allow-write/--read-only", default=None)
@click.option("--usable-by", help="'nobody', 'everyone' or comma-separated groups.")
@click.option("--readable-by", help="'nobody', 'everyone' or comma-separated groups.")
@pass_ctx
def connection_update(
    ctx: Context,
    name: str,
    description: str | None,
    url: str | None,
    params: tuple[str, ...],
    secret_names: tuple[str, ...],
    stdin_name: str | None,
    no_secrets: bool,
    per_user: bool | None,
    allow_write: bool | None,
    usable_by: str | None,
    readable_by: str | None,
) -> None:
    """Change the given settings of a connection (its owner or an administrator), keeping the others.

    Secrets are write-only: the ones given replace every stored one, and are never shown.
    """
    from himalia.wire.data import UpdateConnection

    plane, caller = ctx.plane(), ctx.caller()
    secrets: dict[str, str] | None = None
    if sum(map(bool, (secret_names, stdin_name, no_secrets))) > 1:
        fail("give one of --secret, --secret-stdin and --no-secrets")
    if secret_names:
        secrets = {n: click.prompt(f"{name} secret {n}", hide_input=True) for n in secret_names}
    elif stdin_name:
        secrets = {stdin_name: sys.stdin.read().rstrip("\n")}
    elif no_secrets:
        secrets = {}
    changed_params = None
    if url is not None or params:
        current = run(lambda: plane.connections.get_connection(caller, name)).params or {}
        changed_params = {**current, **({"url": url} if url is not None else {}), **pairs(params, "--param")}
    spec = run(
        lambda: UpdateConnection(
            description=description,
            params=changed_params,
            secrets=secrets,
            credentials_mode=None if per_user is None else "per_user" if per_user else "shared",
            allow_write=allow_write,
            usable_by=None if usable_by is None else access(usable_by),
            details_readable_by=None if readable_by is None else access(readable_by),
        )
    )
    if not spec.model_dump(exclude_none=True):
        fail("nothing to change: give at least one option (see --help)")
    emit(ctx, run(lambda: plane.connections.update_connection(caller, name, spec)), CONNECTION_COLUMNS)


@connection.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def connection_delete(ctx: Context, name: str, yes: bool) -> None:
    """Delete a connection (its owner or an administrator), its secrets and everyone's credentials for it."""
    plane, caller = ctx.plane(), ctx.caller()
    described = run(lambda: plane.connections.get_connection(caller, name))
    if not yes:
        click.confirm(f"Delete connection {name} ({described.type}, owned by {described.owner})?", abort=True)
    run(lambda: plane.connections.delete_connection(caller, name))
    click.echo(f"deleted connection {name}")


@connection.command("list")
@pass_ctx
def connection_list(ctx: Context) -> None:
    page = run(lambda: ctx.plane().connections.list_connections(ctx.caller(), PAGE, 0))
    emit(ctx, page, {**CONNECTION_COLUMNS, "usable": "can_use", "details": "can_read_details"})


@connection.command("test")
@click.argument("name")
@pass_ctx
def connection_test(ctx: Context, name: str) -> None:
    """Connect for real; exit 1 when it fails."""
    result = run(lambda: ctx.plane().connections.test_connection(ctx.caller(), name))
    emit(ctx, result, ["ok", "message", "elapsed_ms"])
    if not result.ok:
        sys.exit(1)


@click.group()
def secrets() -> None:
    """Encryption of connection secrets."""


@secrets.command("rotate")
@pass_ctx
def secrets_rotate(ctx: Context) -> None:
    """Re-encrypt every stored secret with the first configured key."""
    count = run(lambda: ctx.plane().connections.rotate_keys(ctx.caller()))
    click.echo(f"Re-encrypted {count} secret sets with the current key.")
