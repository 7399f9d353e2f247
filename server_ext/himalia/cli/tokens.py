"""``himalia token``: API tokens, shown once when issued and listed by their prefix, never their value."""

import click

from himalia.cli.context import PAGE, Context, pass_ctx
from himalia.cli.output import emit, run

#: Dates where the day says enough, to keep the table within 100 columns.
TOKEN_COLUMNS = {
    "id": "id",
    "user": "user",
    "name": "name",
    "prefix": "prefix",
    "project": "project",
    "created": lambda token: token["created_at"][:10],
    "expires": lambda token: (token["expires_at"] or "never")[:10],
    "last used": "last_used_at",
}


@click.group()
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
    from himalia.wire.identity import CreateToken

    spec = run(lambda: CreateToken(user=login, name=name, expires_in_days=expires_in_days, project=project))
    created = run(lambda: ctx.plane().tokens.create_token(ctx.caller(), spec))
    if ctx.json:
        emit(ctx, created)
    else:
        click.echo(created.token)


@token.command("list")
@click.option("--user", "login", help="One user's tokens (default: everyone's for an administrator, else mine).")
@pass_ctx
def token_list(ctx: Context, login: str | None) -> None:
    """Tokens by id: whose, for which project, until when, last used when."""
    emit(ctx, run(lambda: ctx.plane().tokens.list_tokens(ctx.caller(), PAGE, 0, login)), TOKEN_COLUMNS)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@pass_ctx
def token_revoke(ctx: Context, token_id: int) -> None:
    """Revoke a token ('himalia token list' shows the ids): whatever uses it is refused from now on."""
    run(lambda: ctx.plane().tokens.revoke_token(ctx.caller(), token_id))
    click.echo(f"revoked token {token_id}")
