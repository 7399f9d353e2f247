"""What every command shares: the global options, the control plane they build and who they act as."""

import getpass
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from himalia.cli.output import fail
from himalia.core.errors import HimaliaError

if TYPE_CHECKING:
    from himalia.controlplane import ControlPlane
    from himalia.core.config import LoadedConfig
    from himalia.identity.caller import Caller

#: The page size of the list commands: everything a person reads in a terminal.
PAGE = 500

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
            return ControlPlane(config=loaded.config, **options)
        except (TraitError, HimaliaError) as error:
            reason = error.message if isinstance(error, HimaliaError) else str(error)
            fail(f"configuration ({loaded.describe()}): {reason}")

    def plane(self) -> "ControlPlane":
        if self._plane is None:
            plane = self.new_plane()
            try:
                plane.start()
            except HimaliaError as error:  # a home it cannot write, a schema to upgrade: one line
                fail(error.message)
            self._plane = plane
        return self._plane

    def caller(self) -> "Caller":
        from himalia.identity.caller import Caller

        if self.as_user:
            return self.plane().users.caller_for(self.as_user, client_address="cli")
        return Caller.operator(f"cli:{getpass.getuser()}")


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
