"""Variables: reading and setting the instance's and a project's, checked before they are stored.

How scopes merge and ``${name}`` references expand is ``himalia.core.variables``.
"""

from collections.abc import Mapping
from typing import Any

from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.core.variables import INSTANCE_VARIABLES, resolve
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project
from himalia.identity.service import Service
from himalia.store.orm import InstanceSetting
from himalia.wire.common import Variables


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
