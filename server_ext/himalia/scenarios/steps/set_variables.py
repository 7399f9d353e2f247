"""``set_variables``: set run (or project) variables from values or from a ``variables(current)`` function."""

from himalia.core.unsafe import run_function
from himalia.core.variables import expand
from himalia.scenarios.steps.base import RunContext, StepFailed, StepKind, StepOutcome
from himalia.wire.common import Variables
from himalia.wire.definitions import SetVariablesStep
from himalia.wire.scenarios import StepState


class SetVariables(StepKind[SetVariablesStep]):
    definition = SetVariablesStep

    def run(self, context: RunContext, position: int, step: SetVariablesStep) -> StepOutcome:
        current = context.variables()
        if step.code is not None:
            if not context.may_run_code:
                raise StepFailed(f"{context.actor.login} no longer has 'write_unsafe_code', needed to run code")
            answer = run_function(step.code, "variables", [current], timeout=context.remaining(60.0) or 60.0)
            if answer.error is not None:
                raise StepFailed(answer.error)
            if not isinstance(answer.result, dict) or not all(isinstance(k, str) for k in answer.result):
                raise StepFailed("variables(current) must return a dict of names to values")
            values = answer.result
        else:
            values = expand(step.values or {}, current)
        if step.scope == "project":
            variables = context.host.services.variables
            existing = variables.get_project(context.actor, context.project_key).variables
            variables.set_project(context.actor, context.project_key, Variables(variables={**existing, **values}))
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        message = f"{step.scope} variables: {shown}"[:500]
        return StepOutcome(StepState.SUCCEEDED, message, {"variables": values}, {**context.run_variables, **values})
