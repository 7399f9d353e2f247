"""``himalia user`` and ``group``: people, service accounts and their groups."""

import click

from himalia.cli.context import PAGE, Context, pass_ctx
from himalia.cli.output import emit, fail, run
from himalia.core.permissions import GlobalPermission, Profile

#: The columns people scan; ``--json`` prints every field (when an account was created, who deactivated it).
USER_COLUMNS = {
    "login": "login",
    "name": "display_name",
    "email": "email",
    "profile": "profile",
    "kind": "kind",
    "active": "active",
    "source": "source",
    "last seen": "last_seen_at",
    "groups": "groups",
}
GROUP_COLUMNS = {
    "name": "name",
    "source": "source",
    "permissions": "permissions",
    "members": "member_count",
    "description": "description",
}


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
@click.option("--kind", type=click.Choice(["user", "service"]), help="People or service accounts only.")
@click.option("--active/--deactivated", default=None, help="Only the active or the deactivated accounts.")
@click.option("--search", help="Text in the login, display name or email (any case).")
@pass_ctx
def user_list(ctx: Context, kind: str | None, active: bool | None, search: str | None) -> None:
    page = run(lambda: ctx.plane().users.list_users(ctx.caller(), PAGE, 0, kind=kind, active=active, search=search))
    emit(ctx, page, USER_COLUMNS)


@user.command("set")
@click.argument("login")
@click.option("--display-name")
@click.option("--email")
@click.option("--profile", type=click.Choice([p.value for p in Profile]))
@pass_ctx
def user_set(ctx: Context, login: str, display_name: str | None, email: str | None, profile: str | None) -> None:
    """Change the given settings of a user, keeping the others."""
    from himalia.wire.identity import UpdateUser

    if display_name is None and email is None and profile is None:
        fail("nothing to change: give --display-name, --email or --profile")
    spec = run(lambda: UpdateUser(display_name=display_name, email=email, profile=profile))
    emit(ctx, run(lambda: ctx.plane().users.update_user(ctx.caller(), login, spec)), USER_COLUMNS)


@user.command("deactivate")
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def user_deactivate(ctx: Context, login: str, yes: bool) -> None:
    """Deactivate a user: their tokens are revoked and the scenarios running as them stop starting.

    Their history stays; 'himalia user activate' lets them sign in again (with new tokens).
    """
    from himalia.wire.identity import UpdateUser

    plane, caller = ctx.plane(), ctx.caller()
    effects = run(lambda: plane.users.deactivation(caller, login))
    if effects.refusal:
        fail(effects.refusal)
    if not effects.active:
        fail(f"{login} is already deactivated")
    scenarios = ", ".join(f"{s.project}/{s.id}" for s in effects.scenarios)
    servers = ", ".join(s.name or "default" for s in effects.servers)
    said = [f"{effects.token_count} API token(s) revoked"]
    if effects.scenario_count:
        said.append(f"{effects.scenario_count} scenario(s) running as them no longer start ({scenarios})")
    if effects.servers:
        said.append(f"server(s) left running until stopped in JupyterHub: {servers}")
    if not yes:
        click.confirm(f"Deactivate {login}? {'; '.join(said)}.", abort=True)
    deactivated = run(lambda: plane.users.update_user(caller, login, UpdateUser(active=False)))
    if ctx.json:
        emit(ctx, deactivated)
    else:
        click.echo(f"deactivated {login}: {'; '.join(said)}")


@user.command("activate")
@click.argument("login")
@pass_ctx
def user_activate(ctx: Context, login: str) -> None:
    """Let a deactivated user sign in again; their scenarios start again, their old tokens stay revoked."""
    from himalia.wire.identity import UpdateUser

    emit(ctx, run(lambda: ctx.plane().users.update_user(ctx.caller(), login, UpdateUser(active=True))), USER_COLUMNS)


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
        GROUP_COLUMNS,
    )


@group.command("set")
@click.argument("name")
@click.option("--description")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice([p.value for p in GlobalPermission]),
    help="The group's global permissions, replacing what it held (repeatable).",
)
@click.option("--no-permissions", is_flag=True, help="Take every global permission from the group.")
@pass_ctx
def group_set(
    ctx: Context, name: str, description: str | None, permissions: tuple[str, ...], no_permissions: bool
) -> None:
    """Change a group's description or its global permissions (those given replace all it held)."""
    from himalia.wire.identity import UpdateGroup

    if permissions and no_permissions:
        fail("give --permission or --no-permissions, not both")
    if description is None and not permissions and not no_permissions:
        fail("nothing to change: give --description, --permission or --no-permissions")
    held = list(permissions) if permissions or no_permissions else None
    spec = run(lambda: UpdateGroup(description=description, permissions=held))
    emit(ctx, run(lambda: ctx.plane().users.update_group(ctx.caller(), name, spec)), GROUP_COLUMNS)


@group.command("remove-member")
@click.argument("name")
@click.argument("login")
@pass_ctx
def group_remove_member(ctx: Context, name: str, login: str) -> None:
    emit(ctx, run(lambda: ctx.plane().users.remove_member(ctx.caller(), name, login)), ["name", "members"])


@group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def group_delete(ctx: Context, name: str, yes: bool) -> None:
    """Delete a group: its members lose what it granted (global permissions, project grants, tiers)."""
    plane, caller = ctx.plane(), ctx.caller()
    described = run(lambda: plane.users.get_group(caller, name))
    if not yes:
        click.confirm(
            f"Delete group {name}? Its {described.member_count} member(s) lose its global permissions, "
            "project grants, connection access and tiers.",
            abort=True,
        )
    run(lambda: plane.users.delete_group(caller, name))
    click.echo(f"deleted group {name}")
