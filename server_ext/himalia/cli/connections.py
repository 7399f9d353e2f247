"""``himalia connection`` and ``secrets``: data connections and the encryption of their secrets."""

import os
import sys
from typing import TYPE_CHECKING

import click

from himalia.cli.context import PAGE, Context, pairs, pass_ctx
from himalia.cli.output import emit, fail, run

if TYPE_CHECKING:
    from himalia.wire.data import AccessSpec


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


@click.group()
def secrets() -> None:
    """Encryption of connection secrets."""


@secrets.command("rotate")
@pass_ctx
def secrets_rotate(ctx: Context) -> None:
    """Re-encrypt every stored secret with the first configured key."""
    count = run(lambda: ctx.plane().connections.rotate_keys(ctx.caller()))
    click.echo(f"Re-encrypted {count} secret sets with the current key.")
