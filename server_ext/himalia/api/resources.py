"""Every resource's handlers, one table for the routes and for the OpenAPI document."""

from himalia.api import (
    audit,
    connections,
    datasets,
    health,
    operations,
    project_files,
    projects,
    retention,
    run_steps,
    scenarios,
    tiers,
    tokens,
    usage,
    users,
    variables,
)
from himalia.api.base import APIHandler
from himalia.api.bundles import handlers as bundle_handlers

RESOURCE_HANDLERS: list[type[APIHandler]] = [
    *users.handlers,
    *projects.handlers,
    *connections.handlers,
    *variables.handlers,
    *datasets.handlers,
    *scenarios.handlers,
    *run_steps.handlers,
    *retention.handlers,
    *operations.handlers,
    *project_files.handlers,
    *tiers.handlers,
    *usage.handlers,
    *tokens.handlers,
    *audit.handlers,
    *health.handlers,
    *bundle_handlers,
]
