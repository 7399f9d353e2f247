"""Configuration: traitlets files found as Jupyter finds its own, and environment variables as defaults.

Every host (``himalia serve``, the other CLI commands, the Jupyter server extension) reads
``himalia_config.py`` and ``himalia_config.json`` from the Jupyter config path
(``jupyter --paths``) and the current directory, or only the file ``--config`` or
``$HIMALIA_CONFIG`` names, as ``jupyter server --config`` does. The configurables they build
(``ControlPlane``, ``Mailer``, ``WebhookSettings``, ``HubService``, ``UserIsolation``, the
executors) are created with ``parent=`` and so read their own section, ``c.<Class>.<trait>``.

Environment variables are the traits' defaults (``environment_default``), so a file and an
explicit option both override them and each variable is read in one place.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_config_path, jupyter_data_dir
from traitlets import default
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader
from traitlets.traitlets import DefaultHandler

from himalia.core.errors import HimaliaError

CONFIG_FILE_NAME = "himalia_config"
CONFIG_FILE_VARIABLE = "HIMALIA_CONFIG"
HOME_VARIABLE = "HIMALIA_HOME"
DB_URL_VARIABLE = "HIMALIA_DB_URL"


class ConfigFileError(HimaliaError):
    """A configuration file that cannot be read: absent when named, or failing to run or parse."""


@dataclass
class LoadedConfig:
    """The merged configuration and the files it came from (named in errors about its values)."""

    config: Config = field(default_factory=Config)
    files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(self.files) if self.files else "no configuration file"


def config_search_path() -> list[str]:
    """Folders searched for ``himalia_config.*``, highest priority first: the current directory, then Jupyter's."""
    folders = [os.getcwd()]
    folders += [folder for folder in jupyter_config_path() if folder not in folders]
    return folders


def _load(loader: PyFileConfigLoader | JSONFileConfigLoader) -> Config | None:
    """One file's configuration, ``None`` when absent, ``ConfigFileError`` naming it when it fails."""
    try:
        return loader.load_config()
    except ConfigFileNotFound:
        return None
    except Exception as error:  # the file's own code runs here: any error is the file's
        path = loader.full_filename or os.path.join(loader.path or "", loader.filename)
        reason = str(error) or type(error).__name__
        raise ConfigFileError(f"configuration file {path}: {type(error).__name__}: {reason}") from None


def load_config_files(explicit: str | None = None) -> LoadedConfig:
    """The configuration this process runs with: ``explicit`` (else ``$HIMALIA_CONFIG``) alone if given,
    else every ``himalia_config.py`` and ``.json`` on the search path, the higher-priority ones winning."""
    loaded = LoadedConfig()
    named = explicit or os.environ.get(CONFIG_FILE_VARIABLE) or None
    if named is not None:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise ConfigFileError(f"configuration file {named}: no such file")
        loader_class = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
        config = _load(loader_class(path.name, path=str(path.parent)))
        loaded.config.merge(config or Config())
        loaded.files.append(str(path))
        return loaded
    for folder in reversed(config_search_path()):
        for loader in (
            PyFileConfigLoader(CONFIG_FILE_NAME + ".py", path=folder),
            JSONFileConfigLoader(CONFIG_FILE_NAME + ".json", path=folder),
        ):
            config = _load(loader)
            if config is not None:
                loaded.config.merge(config)
                loaded.files.append(loader.full_filename)
    return loaded


def environment_default(trait: str, variable: str, otherwise: Any, parse: Callable[[str], Any] = str) -> DefaultHandler:
    """A traitlets ``@default`` for ``trait``: ``$variable`` parsed by ``parse`` when set and not blank,
    else ``otherwise`` (a value, or a function of the configurable for defaults derived from other traits).

    Assign it in the class body (``_default_home = environment_default("home", "HIMALIA_HOME", ...)``),
    as JupyterHub's ``HubAuth`` reads ``$JUPYTERHUB_API_TOKEN``: a configuration file or an explicit
    option still wins, and the variable is read nowhere else.
    """

    def from_environment(configurable: Any) -> Any:
        value = os.environ.get(variable, "")
        if value.strip():
            return parse(value)
        return otherwise(configurable) if callable(otherwise) else otherwise

    from_environment.__name__ = f"_default_{trait}"
    from_environment.__doc__ = f"${variable}, else the built-in default."
    return default(trait)(from_environment)


def absolute_path(value: str) -> str:
    """A path from the environment made absolute at once: workers and kernels run in other
    folders, so a relative ``HIMALIA_HOME=.himalia-demo`` would name another place there."""
    return os.path.abspath(os.path.expanduser(value))


def comma_separated(value: str) -> list[str]:
    """``a, b,,c`` as ``["a", "b", "c"]``: how list-valued environment variables are written."""
    return [part.strip() for part in value.split(",") if part.strip()]


def default_home() -> str:
    """The home when nothing names one: ``himalia`` in Jupyter's data directory."""
    return os.path.join(jupyter_data_dir(), "himalia")


def default_db_url(home: str) -> str:
    """The store when nothing names one: a SQLite file in the home."""
    return f"sqlite:///{Path(home) / 'himalia.sqlite'}"


def store_location(config: Config, home: str | None = None, db_url: str | None = None) -> tuple[str, str]:
    """The home and store URL a ``ControlPlane`` built from ``config`` and these options would use
    (option, file, environment, default: the traits' order), without importing the control plane."""
    section = config.get("ControlPlane", {})
    home = absolute_path(home or section.get("home") or os.environ.get(HOME_VARIABLE, "").strip() or default_home())
    db_url = db_url or section.get("db_url") or os.environ.get(DB_URL_VARIABLE, "").strip() or default_db_url(home)
    return home, db_url
