"""A notebook's typed parameters: what a value must be for a declared type, and a command line's text read as one.

Light on purpose (no nbformat, no papermill): the CLI reads ``-p name=value`` with it before
submitting a run to a serving control plane.
"""

import json
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
