"""``himalia project``: projects and their grants."""

import click

from himalia.cli.context import PAGE, Context, pass_ctx
from himalia.cli.output import emit, run
from himalia.core.permissions import ProjectPermission

PROJECT_COLUMNS = ("key", "name", "owner", "tags", "status")


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
        PROJECT_COLUMNS,
    )


@project.command("list")
@click.option("--search")
@click.option("--tag")
@pass_ctx
def project_list(ctx: Context, search: str | None, tag: str | None) -> None:
    page = run(lambda: ctx.plane().projects.list_projects(ctx.caller(), PAGE, 0, search, tag))
    emit(ctx, page, [*PROJECT_COLUMNS, "my_permissions"])


@project.command("archive")
@click.argument("key")
@pass_ctx
def project_archive(ctx: Context, key: str) -> None:
    """Archive a project: kept with its history, its scenarios deactivated so that none runs on a schedule."""
    from himalia.wire.identity import UpdateProject

    plane, caller = ctx.plane(), ctx.caller()
    scenarios = run(lambda: plane.scenarios.list_scenarios(caller, key, PAGE, 0)).items
    archived = run(lambda: plane.projects.update_project(caller, key, UpdateProject(status="archived")))
    if ctx.json:
        emit(ctx, archived)
        return
    stopped = [s.id for s in scenarios if s.active]
    click.echo(f"archived {key}" + (f"; deactivated its scenarios {', '.join(stopped)}" if stopped else ""))


@project.command("unarchive")
@click.argument("key")
@pass_ctx
def project_unarchive(ctx: Context, key: str) -> None:
    """Make an archived project active again; its scenarios stay inactive until someone activates them."""
    from himalia.wire.identity import UpdateProject

    emit(
        ctx,
        run(lambda: ctx.plane().projects.update_project(ctx.caller(), key, UpdateProject(status="active"))),
        PROJECT_COLUMNS,
    )


@project.command("delete")
@click.argument("key")
@click.option("--delete-bundles", is_flag=True, help="Delete its stored bundle versions with it.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def project_delete(ctx: Context, key: str, delete_bundles: bool, yes: bool) -> None:
    """Delete a project and everything in it; refused while one of its scenarios is active (archive it
    first), a run of it is not finished, or bundle versions of it are stored (unless --delete-bundles)."""
    plane, caller = ctx.plane(), ctx.caller()
    described = run(lambda: plane.projects.get_project(caller, key))
    if not yes:
        click.confirm(
            f"Delete project {key} ({described.name}) with its datasets, checks, scenarios, their history"
            + (" and its bundle versions?" if delete_bundles else "?"),
            abort=True,
        )
    run(lambda: plane.projects.delete_project(caller, key, delete_bundles))
    click.echo(f"deleted project {key}")


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
