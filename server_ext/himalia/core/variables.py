"""Variables: JSON objects merged by scope and expanded into strings (pure: no store, no caller).

Scopes merge from the widest to the narrowest: instance < project < scenario < run, the later
winning key by key. ``${name}`` in a string is replaced by the variable's value (its JSON text
when not a string); ``$${`` escapes a literal ``${``.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from himalia.core.errors import InvalidInput

#: The instance setting holding the instance's variables.
INSTANCE_VARIABLES = "instance_variables"
REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
#: No expanded string may be longer: nested references multiply lengths ("billion laughs").
MAX_EXPANDED_LENGTH = 1_000_000


def merge_scopes(*scopes: Mapping[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for scope in scopes:
        merged.update(scope or {})
    return merged


def _expand(value: Any, variables: Mapping[str, Any], done: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {key: _expand(item, variables, done, stack) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, variables, done, stack) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name in stack:
            raise InvalidInput(f"Variables refer to each other in a cycle: {' -> '.join((*stack, name))}.", field=name)
        if name not in variables:
            raise InvalidInput(f"Unknown variable '{name}' in \"{value[:200]}\".", field=name)
        if name not in done:
            done[name] = _expand(variables[name], variables, done, (*stack, name))
        resolved = done[name]
        return resolved if isinstance(resolved, str) else json.dumps(resolved)

    expanded = REFERENCE.sub(substitute, value)
    if len(expanded) > MAX_EXPANDED_LENGTH:
        raise InvalidInput(f"Variables expand to more than {MAX_EXPANDED_LENGTH:,} characters.", field="variables")
    return expanded


def expand(value: Any, variables: Mapping[str, Any]) -> Any:
    """Expand ``${name}`` references in every string of ``value``, recursively; each variable once."""
    return _expand(value, variables, {}, ())


def resolve(*scopes: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = merge_scopes(*scopes)
    done: dict[str, Any] = {}
    return {key: _expand(value, merged, done, (key,)) for key, value in merged.items()}
