"""A notebook's typed parameters: what a value must be for a declared type, and a command line's text read as one.

Light on purpose (papermill is imported only to inspect a notebook): the CLI reads ``-p
name=value`` with it before submitting a run to a serving control plane, and a kernel's
``himalia.parameters_form()`` types its form with it as a scenario run types its parameters.
"""

import ast
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from himalia.core.errors import InvalidInput

#: Papermill's type names mapped to what a value must be; anything else is not checked.
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


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
    allowed = PARAMETER_TYPES.get(head)
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
