"""The permission vocabulary: global permissions on groups, project permissions on grants.

Modelled on Dataiku's model: groups carry global permissions, projects grant permissions to
groups (and, here, to single users). A user's profile is a licensing label and never enters
these computations.
"""

from collections.abc import Iterable
from enum import StrEnum
from functools import cache, lru_cache


class GlobalPermission(StrEnum):
    ADMIN = "admin"
    CREATE_PROJECTS = "create_projects"
    CREATE_CONNECTIONS = "create_connections"
    MANAGE_TIERS = "manage_tiers"
    VIEW_AUDIT = "view_audit"
    WRITE_UNSAFE_CODE = "write_unsafe_code"
    #: Notebooks that run as the person's own OS account or pod (Dataiku's user isolation), never as the platform.
    WRITE_ISOLATED_CODE = "write_isolated_code"
    MANAGE_ALL_SCENARIOS = "manage_all_scenarios"


class ProjectPermission(StrEnum):
    READ_DASHBOARDS = "read_dashboards"
    READ_CONTENT = "read_content"
    WRITE_CONTENT = "write_content"
    RUN_SCENARIOS = "run_scenarios"
    EXPORT_DATASETS = "export_datasets"
    ADMIN = "admin"


class Profile(StrEnum):
    """Licensing label only (Dataiku's user profile); never a security boundary."""

    READER = "reader"
    ANALYST = "analyst"
    DESIGNER = "designer"


P = ProjectPermission

# What each permission brings with it, as in Dataiku where ticking "write" ticks "read".
_PROJECT_IMPLIES: dict[ProjectPermission, frozenset[ProjectPermission]] = {
    P.READ_DASHBOARDS: frozenset(),
    P.READ_CONTENT: frozenset({P.READ_DASHBOARDS}),
    P.WRITE_CONTENT: frozenset({P.READ_CONTENT, P.READ_DASHBOARDS}),
    P.RUN_SCENARIOS: frozenset({P.READ_DASHBOARDS}),
    P.EXPORT_DATASETS: frozenset({P.READ_CONTENT, P.READ_DASHBOARDS}),
    P.ADMIN: frozenset(ProjectPermission),
}

# Domino's project roles, as people know them, expanded to Himalia's permissions.
PROJECT_PRESETS: dict[str, frozenset[ProjectPermission]] = {
    "reader": frozenset({P.READ_DASHBOARDS, P.READ_CONTENT}),
    "launcher": frozenset({P.READ_DASHBOARDS, P.RUN_SCENARIOS}),
    "contributor": frozenset({P.READ_DASHBOARDS, P.READ_CONTENT, P.WRITE_CONTENT, P.RUN_SCENARIOS, P.EXPORT_DATASETS}),
    "admin": frozenset(ProjectPermission),
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "reader": "Results consumer: reads the project's content and dashboards.",
    "launcher": "Runs scenarios and reads their results, without access to the content.",
    "contributor": "Reads and writes content, runs scenarios, exports datasets.",
    "admin": "Everything, including the project's grants and settings.",
}


def expand_project_permissions(
    permissions: Iterable[ProjectPermission | str],
) -> frozenset[ProjectPermission]:
    """Close a set of project permissions under implication."""
    return _closure(frozenset(permissions))


@cache
def _closure(granted: frozenset[str]) -> frozenset[ProjectPermission]:
    """Kept per set granted (there are 64 of them): listings close one set per row."""
    result: set[ProjectPermission] = set()
    for permission in granted:
        member = ProjectPermission(permission)
        result.add(member)
        result |= _PROJECT_IMPLIES[member]
    return frozenset(result)


@cache
def in_order(permissions: frozenset[ProjectPermission]) -> tuple[ProjectPermission, ...]:
    """``permissions`` in declaration order, kept per set as ``_closure`` is."""
    return tuple(p for p in ProjectPermission if p in permissions)


def preset_of(permissions: frozenset[ProjectPermission]) -> str | None:
    """The preset whose expansion equals ``permissions``, if any."""
    closed = expand_project_permissions(permissions)
    for name, preset in PROJECT_PRESETS.items():
        if expand_project_permissions(preset) == closed:
            return name
    return None


def as_flags(granted: Iterable[str], vocabulary: type[StrEnum]) -> dict[str, bool]:
    """A ``{permission: bool}`` mapping over the whole vocabulary, in declaration order."""
    return dict(_flag_items(frozenset(granted), vocabulary))


@lru_cache(maxsize=256)
def _flag_items(held: frozenset[str], vocabulary: type[StrEnum]) -> tuple[tuple[str, bool], ...]:
    """Kept per set held: a matrix of hundreds of rows holds a few distinct sets (a new dict each)."""
    return tuple((member.value, member.value in held) for member in vocabulary)
