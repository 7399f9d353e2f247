"""Notebook snapshots and their typed parameters.

A scenario runs the notebooks as they were when it was saved, never what someone's workspace
holds at 2 AM: saving stores each notebook once, addressed by the SHA-256 of its canonical JSON,
and the scenario (then each run) records the digest. The parameters cell is read with
papermill's ``inspect_notebook`` when the snapshot is taken; a parameter's type comes from its
annotation (``threshold: float = 0.8``), else from its default's literal.
"""

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from himalia.core.errors import InvalidInput
from himalia.store.orm import NotebookSnapshot
from himalia.wire.parameters import inspect_parameters


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


def store_snapshot(session: Session, text: str) -> NotebookSnapshot:
    """The snapshot of this canonical notebook text, stored once."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    snapshot = session.get(NotebookSnapshot, digest)
    if snapshot is None:
        snapshot = NotebookSnapshot(digest=digest, content=text, parameters=inspect_parameters(text))
        session.add(snapshot)
        session.flush()
    return snapshot
