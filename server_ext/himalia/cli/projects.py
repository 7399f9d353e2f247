"""``himalia project``: projects and their grants."""

import click

from himalia.cli.context import PAGE, Context, pass_ctx
from himalia.cli.output import emit, run
from himalia.core.permissions import ProjectPermission


@click.group()
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
    from himalia.wire.identity import CreateProject

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
    from himalia.wire.identity import SetGrant

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


@project.command("explain")
@click.argument("key")
@click.argument("login", metavar="USER")
@click.argument("permission", type=click.Choice([p.value for p in ProjectPermission]))
@pass_ctx
def project_explain(ctx: Context, key: str, login: str, permission: str) -> None:
    """Why USER holds PERMISSION on project KEY, or what is missing and who can grant it."""
    answer = run(lambda: ctx.plane().projects.explain_access(ctx.caller(), login, key, ProjectPermission(permission)))
    if ctx.json:
        emit(ctx, answer)
        return
    click.echo(answer.explanation)
    if answer.grant_command:
        click.echo(f"to grant it: {answer.grant_command}")
    if not answer.granted and answer.administrators:
        click.echo(f"administrators: {', '.join(answer.administrators)}")
