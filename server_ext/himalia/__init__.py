"""Himalia: production discipline around plain Jupyter notebooks.

The package is at once the control plane (store, services, REST API, CLI) and the
Jupyter server extension that serves its API inside a plain ``jupyter server``.
"""

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .extension import HimaliaExtension

    return [{"module": "himalia", "app": HimaliaExtension}]
