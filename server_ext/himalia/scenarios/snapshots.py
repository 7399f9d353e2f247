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

import nbformat
import papermill
import yaml
from sqlalchemy.orm import Session

from himalia.core.errors import InvalidInput
from himalia.store.orm import NotebookSnapshot

#: Papermill's type names mapped to what a value must be; anything else is not checked.
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def canonical(notebook: dict[str, Any] | str, field: str) -> tuple[str, dict[str, Any]]:
    """The notebook's canonical JSON text and its node, or ``InvalidInput`` naming ``field``."""
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
    return type(value).__name__ if type(value).__name__ in _TYPES else "any"


def _base_type(type_name: str) -> tuple[str, bool]:
    """``Optional[float]`` -> ("float", True); ``List[str]`` -> ("list", False)."""
    text = type_name.replace("typing.", "").strip()
    optional = False
    if text.startswith("Optional[") and text.endswith("]"):
        text, optional = text[len("Optional[") : -1], True
    if "|" in text:
        parts = [part.strip() for part in text.split("|")]
        optional = optional or "None" in parts
        parts = [part for part in parts if part != "None"]
        text = parts[0] if len(parts) == 1 else "any"
    head = text.split("[", 1)[0].lower()
    return head, optional


def check_value(parameter: dict[str, Any], value: Any, field: str) -> None:
    """Refuse a value of the wrong type for a typed parameter."""
    head, optional = _base_type(parameter["type"])
    if value is None and optional:
        return
    allowed = _TYPES.get(head)
    if allowed is None:
        return
    wrong_bool = isinstance(value, bool) and bool not in allowed
    if wrong_bool or not isinstance(value, allowed):
        raise InvalidInput(
            f"{field}: the notebook declares {parameter['name']}: {parameter['type']}, "
            f"not {type(value).__name__} {json.dumps(value, default=str)[:100]}",
            field=field,
        )


def coerce_text(parameter: dict[str, Any] | None, text: str, field: str) -> Any:
    """A value typed on a command line (``-p threshold=0.9``), read as the parameter's type."""
    head = _base_type(parameter["type"])[0] if parameter else "any"
    if head == "str":
        return text
    try:
        value = json.loads(text) if head in {"list", "dict"} else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise InvalidInput(f"{field}: '{text}' is not a {head}", field=field) from None
    if head == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if parameter:
        check_value(parameter, value, field)
    return value


def store_snapshot(session: Session, text: str) -> NotebookSnapshot:
    """The snapshot of this canonical notebook text, stored once."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    snapshot = session.get(NotebookSnapshot, digest)
    if snapshot is None:
        snapshot = NotebookSnapshot(digest=digest, content=text, parameters=inspect_parameters(text))
        session.add(snapshot)
        session.flush()
    return snapshot
