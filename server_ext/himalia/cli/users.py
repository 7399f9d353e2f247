"""``himalia user``, ``group`` and ``token``: people, service accounts, their groups and API tokens."""

import click

from himalia.cli.context import PAGE, Context, pass_ctx
from himalia.cli.output import emit, run
from himalia.core.permissions import GlobalPermission, Profile


@click.group()
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
    from himalia.wire.identity import CreateUser

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


@click.group()
def group() -> None:
    """Groups and their global permissions."""


@group.command("add")
@click.argument("name")
@click.option("--permission", "permissions", multiple=True, type=click.Choice([p.value for p in GlobalPermission]))
@click.option("--description", default="")
@pass_ctx
def group_add(ctx: Context, name: str, permissions: tuple[str, ...], description: str) -> None:
    """Create a group."""
    from himalia.wire.identity import CreateGroup

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
