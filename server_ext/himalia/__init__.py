"""Himalia: production discipline around plain Jupyter notebooks.

The package is at once the control plane (store, services, REST API, CLI), the Jupyter
server extension that serves its API inside a plain ``jupyter server``, and, for notebooks,
the kernel client: ``himalia.connection``, ``himalia.dataset``, ``himalia.checks``,
``himalia.scenario``, ``himalia.parameters_form``, ``himalia.variables``,
``himalia.set_project_variables``, ``himalia.record_metric`` and ``%load_ext himalia`` for
the ``%%sql`` magic. The JupyterLab panels are built from ``jupyter_ext/`` into ``labextension/``.

Every kernel may import this package, so it imports nothing of its own until a name is used: the
client (``himalia.kernel``, HTTP only) on first use of one of its names, the server extension when
Jupyter asks for it.
"""

from typing import Any

__version__ = "0.1.0"

#: The kernel client's API, imported on first use.
_CLIENT_NAMES = frozenset(
    {
        "connection",
        "dataset",
        "checks",
        "scenario",
        "parameters_form",
        "variables",
        "set_project_variables",
        "record_metric",
        "HimaliaClientError",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from himalia.kernel import client

        return getattr(client, name)
    raise AttributeError(f"module 'himalia' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    from himalia.kernel.magic import load_ipython_extension

    load_ipython_extension(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from himalia.hosts.extension import HimaliaExtension

    return [{"module": "himalia", "app": HimaliaExtension}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt lab extension, for `jupyter labextension develop` (wheels ship it as data)."""
    return [{"src": "labextension", "dest": "himalia"}]
