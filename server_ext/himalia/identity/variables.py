"""Variables: instance and project JSON objects, merged by scope and expanded into strings.

Scopes merge from the widest to the narrowest: instance < project < scenario < run, the later
winning key by key. ``${name}`` in a string is replaced by the variable's value (its JSON text
when not a string); ``$${`` escapes a literal ``${``.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from himalia.core.errors import InvalidInput
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import Service
from himalia.store.orm import InstanceSetting
from himalia.wire.common import Variables

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


class VariableService(Service):
    def get_instance(self, caller: Caller) -> Variables:
        with self.db.read() as session:
            setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
            return Variables(variables=dict(setting.value) if setting else {})

    def set_instance(self, caller: Caller, spec: Variables) -> Variables:
        caller.require(GlobalPermission.ADMIN)
        resolve(spec.variables)  # reject cycles and dangling references before storing
        with self.db.write() as session:
            setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
            if setting is None:
                setting = InstanceSetting(name=INSTANCE_VARIABLES)
                session.add(setting)
            before = dict(setting.value or {})
            setting.value = spec.variables
            self.audit.record(
                session,
                caller,
                "variables.set",
                "instance",
                "variables",
                details={"changed": sorted(_changed(before, spec.variables))},
            )
            return Variables(variables=spec.variables)

    def get_project(self, caller: Caller, key: str, resolved: bool = False) -> Variables:
        with self.db.read() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.READ_CONTENT)
            if not resolved:
                return Variables(variables=dict(project.variables))
            setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
            return Variables(variables=resolve(setting.value if setting else {}, project.variables))

    def set_project(self, caller: Caller, key: str, spec: Variables) -> Variables:
        with self.db.write() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.WRITE_CONTENT)
            setting = session.get(InstanceSetting, INSTANCE_VARIABLES)
            resolve(setting.value if setting else {}, spec.variables)
            before = dict(project.variables)
            project.variables = spec.variables
            self.audit.record(
                session,
                caller,
                "variables.set",
                "project",
                key,
                project_key=key,
                details={"changed": sorted(_changed(before, spec.variables))},
            )
            return Variables(variables=spec.variables)


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
