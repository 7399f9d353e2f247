"""``himalia bundle``: promote a project's definitions from a design instance to a production one.

On design: ``bundle create KEY -o FILE`` and ``bundle key`` (the public key production trusts).
On production: ``bundle trust NAME KEY`` once, then ``bundle import FILE --map-connection
OLD=NEW --activate``; ``bundle activate KEY VERSION`` rolls back to any stored version.
"""

from pathlib import Path

import click

from himalia.cli.context import Context, json_option, pairs, pass_ctx
from himalia.cli.output import emit, fail, run

BUNDLE_COLUMNS = ("version", "active", "note", "origin", "signer", "created_by", "datasets", "scenarios")


@click.group()
def bundle() -> None:
    """Versioned, signed bundles of a project's definitions, and their activation elsewhere."""


@bundle.command("key")
@json_option
@pass_ctx
def bundle_key(ctx: Context) -> None:
    """This instance's public signing key: give it to `himalia bundle trust` on the importer."""
    key = ctx.plane().bundles.public_key()
    if ctx.json:
        emit(ctx, key)
    else:
        click.echo(key.public_key)


@bundle.command("trust")
@click.argument("name")
@click.argument("public_key")
@json_option
@pass_ctx
def bundle_trust(ctx: Context, name: str, public_key: str) -> None:
    """Import bundles signed by PUBLIC_KEY (administrators), known as NAME."""
    from himalia.wire.bundles import TrustKey

    spec = run(lambda: TrustKey(name=name, public_key=public_key))
    emit(ctx, run(lambda: ctx.plane().bundles.trust_key(ctx.caller(), spec)), ("name", "fingerprint", "source"))


@bundle.command("untrust")
@click.argument("name")
@pass_ctx
def bundle_untrust(ctx: Context, name: str) -> None:
    """Stop importing bundles signed by the key trusted as NAME."""
    run(lambda: ctx.plane().bundles.untrust_key(ctx.caller(), name))
    click.echo(f"no longer trusted: {name}")


@bundle.command("keys")
@json_option
@pass_ctx
def bundle_keys(ctx: Context) -> None:
    """The keys whose bundles this instance imports."""
    keys = run(lambda: ctx.plane().bundles.list_trusted_keys(ctx.caller()))
    emit(ctx, keys, ("name", "fingerprint", "source", "added_by", "public_key"))


@bundle.command("create")
@click.argument("key")
@click.option("--note", default="", help="What this version is (shown in listings).")
@click.option("--with-grants", is_flag=True, help="Carry the project's group grants, by group name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the file here.")
@json_option
@pass_ctx
def bundle_create(ctx: Context, key: str, note: str, with_grants: bool, output: Path | None) -> None:
    """Record the project's definitions as its next version (project admins)."""
    service, caller = ctx.plane().bundles, ctx.caller()
    created = run(lambda: service.create_bundle(caller, key, note, with_grants))
    if output is not None:
        output.write_bytes(run(lambda: service.download(caller, key, created.version))[1])
    emit(ctx, created, BUNDLE_COLUMNS)
    if output is not None and not ctx.json:
        click.echo(f"wrote {output}")


@bundle.command("list")
@click.argument("key")
@json_option
@pass_ctx
def bundle_list(ctx: Context, key: str) -> None:
    """The project's stored versions; the active one is marked."""
    emit(ctx, run(lambda: ctx.plane().bundles.list_bundles(ctx.caller(), key)), BUNDLE_COLUMNS)


@bundle.command("download")
@click.argument("key")
@click.argument("version", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@pass_ctx
def bundle_download(ctx: Context, key: str, version: int, output: Path) -> None:
    """Write a stored version's file."""
    output.write_bytes(run(lambda: ctx.plane().bundles.download(ctx.caller(), key, version))[1])
    click.echo(f"wrote {output}")


@bundle.command("import")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map-connection", "mappings", multiple=True, metavar="OLD=NEW", help="Use this connection instead.")
@click.option("--activate", is_flag=True, help="Make it live now, all or nothing; else only store it.")
@click.option("--dry-run", is_flag=True, help="Validate and show the difference; store nothing.")
@json_option
@pass_ctx
def bundle_import(ctx: Context, path: Path, mappings: tuple[str, ...], activate: bool, dry_run: bool) -> None:
    """Validate a bundle, show what it changes against what is live, store it and optionally activate it."""
    from himalia.bundles.format import bundle_project

    if activate and dry_run:
        fail("--activate and --dry-run exclude each other")
    content, mapping = path.read_bytes(), pairs(mappings, "--map-connection")
    key = run(lambda: bundle_project(content))
    service, caller = ctx.plane().bundles, ctx.caller()
    if dry_run:
        result = run(lambda: service.preview(caller, key, content, mapping))
    else:
        result = run(lambda: service.import_bundle(caller, key, content, mapping, activate))
    _report(ctx, result)


@bundle.command("activate")
@click.argument("key")
@click.argument("version", type=int)
@click.option("--map-connection", "mappings", multiple=True, metavar="OLD=NEW", help="Replace the stored mapping.")
@json_option
@pass_ctx
def bundle_activate(ctx: Context, key: str, version: int, mappings: tuple[str, ...]) -> None:
    """Make a stored version live again (a rollback), all or nothing."""
    mapping = pairs(mappings, "--map-connection") if mappings else None
    _report(ctx, run(lambda: ctx.plane().bundles.activate(ctx.caller(), key, version, mapping)))


def _report(ctx: Context, result: object) -> None:
    from himalia.wire.bundles import BundlePreview

    assert isinstance(result, BundlePreview)
    if ctx.json:
        emit(ctx, result)
        return
    described = result.bundle
    click.echo(f"{described.project} version {described.version}, signed by {described.signer}")
    for change in result.changes:
        click.echo(f"  {change.change:8} {change.kind} {change.name}")
    if not result.changes:
        click.echo("  no change against what is live")
    state = "activated" if result.activated else "stored, not activated" if result.stored else "nothing stored"
    click.echo(state)
