"""Notebook snapshots and their typed parameters.

A scenario runs the notebooks as they were when it was saved, never what someone's workspace
holds at 2 AM: saving stores each notebook once, addressed by the SHA-256 of its canonical JSON,
and the scenario (then each run) records the digest. The parameters cell is read with
papermill's ``inspect_notebook`` when the snapshot is taken; a parameter's type comes from its
annotation (``threshold: float = 0.8``), else from its default's literal.
"""

import ast
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from himalia.core.errors import InvalidInput
from himalia.store.orm import NotebookSnapshot
from himalia.wire.parameters import PARAMETER_TYPES


def canonical(notebook: dict[str, Any] | str, field: str) -> tuple[str, dict[str, Any]]:
    """The notebook's canonical JSON text and its node, or ``InvalidInput`` naming ``field``."""
    import nbformat  # imported when first needed: it weighs 34 MiB in a control plane that may never save

    try:
        node = nbformat.reads(notebook if isinstance(notebook, str) else json.dumps(notebook), as_version=4)
        nbformat.validate(node)
    except Exception as error:  # nbformat raises JSON, validation and version errors alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InvalidInput(f"{field}: not a valid notebook ({first[:200]})", field=field) from None
    plain = json.loads(nbformat.writes(node))
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False), plain


def notebook_kernel(text: str) -> str | None:
    """The kernel a canonical notebook names in its metadata (papermill's default), if any."""
    kernelspec = json.loads(text).get("metadata", {}).get("kernelspec") or {}
    name = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    return name if isinstance(name, str) and name else None


def inspect_parameters(text: str) -> list[dict[str, Any]]:
    """The parameters cell as papermill reads it, with a type for each parameter."""
    import papermill  # when first needed: with its Arrow and kernel clients, 90 MiB in an idle server

    with tempfile.TemporaryDirectory(prefix="himalia-inspect-") as folder:
        path = Path(folder) / "notebook.ipynb"
        path.write_text(text, encoding="utf-8")
        found = papermill.inspect_notebook(str(path))
    parameters = []
    for name, parameter in found.items():
        type_name = str(parameter.get("inferred_type_name") or "None")
        default = str(parameter.get("default") or "")
        if type_name == "None":
            type_name = _literal_type(default)
        parameters.append({"name": name, "type": type_name, "default": default, "help": parameter.get("help", "")})
    return parameters


def _literal_type(source: str) -> str:
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return "any"
    return type(value).__name__ if type(value).__name__ in PARAMETER_TYPES else "any"


def store_snapshot(session: Session, text: str) -> NotebookSnapshot:
    """The snapshot of this canonical notebook text, stored once."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    snapshot = session.get(NotebookSnapshot, digest)
    if snapshot is None:
        snapshot = NotebookSnapshot(digest=digest, content=text, parameters=inspect_parameters(text))
        session.add(snapshot)
        session.flush()
    return snapshot
