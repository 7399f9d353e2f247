"""What every command shares: the global options, the control plane they build and who they act as."""

import getpass
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from himalia.cli.output import fail
from himalia.core.errors import HimaliaError

if TYPE_CHECKING:
    from himalia.cli.serving import ServingPlane
    from himalia.controlplane import ControlPlane
    from himalia.core.config import LoadedConfig
    from himalia.identity.caller import Caller

#: The page size of the list commands: everything a person reads in a terminal.
PAGE = 500

#: Commands that only read the store: without one they say so instead of creating an empty one.
READ_ONLY_COMMANDS = frozenset(
    {
        *("user list", "group list", "project list", "project grants", "connection list", "variables get"),
        *("audit verify", "audit export", "dataset list", "scenario list", "scenario export", "scenario runs"),
        *("scenario log", "tier list", "tier show", "tier usage", "bundle keys", "bundle list", "bundle download"),
        *("project explain", "ops guide", "ops status", "token list"),
    }
)

#: How a store is named; without any of them (or a configuration file's ControlPlane.home / db_url)
#: the CLI uses the default home and says so.
STORE_OPTIONS = "--home, --db-url, $HIMALIA_HOME, $HIMALIA_DB_URL or a configuration file"

CONFIG_HELP = """Configuration file (traitlets, .py or .json) read instead of himalia_config.* on the Jupyter
config path and in the current directory. Default: $HIMALIA_CONFIG."""


@dataclass
class Context:
    home: str | None
    db_url: str | None
    as_user: str | None
    json: bool
    config_file: str | None = None
    _plane: "ControlPlane | None" = None
    _loaded: "LoadedConfig | None" = None

    def configuration(self) -> "LoadedConfig":
        """The configuration files' settings (``--config``, ``$HIMALIA_CONFIG`` or ``himalia_config.*``)."""
        from himalia.core.config import load_config_files

        if self._loaded is None:
            try:
                self._loaded = load_config_files(self.config_file)
            except HimaliaError as error:
                fail(error.message)
        return self._loaded

    def new_plane(self) -> "ControlPlane":
        """A control plane configured by the files, ``--home`` and ``--db-url`` winning over them; not started."""
        loaded = self.configuration()  # first: a broken file is refused before the services are imported
        from traitlets import TraitError

        from himalia.controlplane import ControlPlane

        options = {name: value for name, value in {"home": self.home, "db_url": self.db_url}.items() if value}
        try:
            plane = ControlPlane(config=loaded.config, **options)
        except (TraitError, HimaliaError) as error:
            reason = error.message if isinstance(error, HimaliaError) else str(error)
            fail(f"configuration ({loaded.describe()}): {reason}")
        if not self._store_named(loaded):
            _report_default_store(plane.home, plane.db_url)
        return plane

    def _store_named(self, loaded: "LoadedConfig") -> bool:
        """Whether an option, a variable or a configuration file says where the store is."""
        section = loaded.config.get("ControlPlane", {})
        return bool(
            self.home
            or self.db_url
            or os.environ.get("HIMALIA_HOME")
            or os.environ.get("HIMALIA_DB_URL")
            or "home" in section
            or "db_url" in section
        )

    def plane(self) -> "ControlPlane":
        try:
            return self.started_plane()
        except HimaliaError as error:  # a home it cannot write, a schema to upgrade: one line
            fail(error.message)

    def started_plane(self) -> "ControlPlane":
        """The control plane, started once; a store it cannot use raises (``ops status`` exits 2 on it)."""
        if self._plane is None:
            plane = self.new_plane()
            plane.start()
            self._plane = plane
        return self._plane

    def serving_plane(self) -> "ServingPlane | None":
        """The control plane serving this store from this home, if one answers on the home's operator
        socket (``himalia.core.operator_socket``): commands that find it send their request there."""
        from himalia.cli.serving import ForeignSocket, ServingPlane
        from himalia.core.config import store_location

        home, db_url = store_location(self.configuration().config, self.home, self.db_url)
        try:
            return ServingPlane.find(home, db_url, self.as_user)
        except ForeignSocket as foreign:
            click.echo(f"warning: {foreign}; the command runs in its own process.", err=True)
            return None

    def caller(self) -> "Caller":
        from himalia.identity.caller import Caller

        if self.as_user:
            return self.plane().users.caller_for(self.as_user, client_address="cli")
        return Caller.operator(f"cli:{getpass.getuser()}")


def _report_default_store(home: str, db_url: str) -> None:
    """Nothing named a store and the default home's (``db_url``, a SQLite file) does not exist yet: a
    reading command stops, saying where it looked and how to point at a store; any other creates one
    there and says so on stderr."""
    from sqlalchemy.engine import make_url

    if Path(make_url(db_url).database or "").exists():
        return
    if _command_path() in READ_ONLY_COMMANDS:
        fail(
            f"no Himalia store in {home} (the default home, as no {STORE_OPTIONS} names one); point at "
            "one with --home or $HIMALIA_HOME (make lab's: HIMALIA_HOME=.himalia-demo), or --db-url"
        )
    click.echo(f"himalia: creating a new store in {home} (the default home: no {STORE_OPTIONS} names one)", err=True)


def _command_path() -> str:
    """The running subcommand as typed after ``himalia`` (``project list``), from click's contexts."""
    names = []
    context = click.get_current_context(silent=True)
    while context is not None and context.parent is not None:
        names.append(context.info_name or "")
        context = context.parent
    return " ".join(reversed(names))


pass_ctx = click.make_pass_decorator(Context)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` after the command too (``himalia metrics compute P D --json``), as before it."""

    def enable(context: click.Context, _parameter: click.Parameter, value: bool) -> None:
        if value:
            context.ensure_object(Context).json = True

    return click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=enable, help="Print JSON instead of tables."
    )(command)


def config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` before the command or after it (``himalia serve --config …``)."""

    def remember(context: click.Context, _parameter: click.Parameter, value: str | None) -> None:
        if value:
            context.ensure_object(Context).config_file = value

    return click.option(
        "--config",
        "config_file",
        metavar="FILE",
        expose_value=False,
        callback=remember,
        help=CONFIG_HELP,
    )(command)


def pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a mapping, or exit 1 naming the option given something else."""
    result = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"{option} takes NAME=VALUE, not '{item}'")
        result[name] = value
    return result
