"""``run_scenario``: request a run of another scenario of the project, and wait for it if asked."""

from himalia.scenarios.steps.base import RunContext, StepKind, StepOutcome
from himalia.wire.definitions import RunScenarioStep
from himalia.wire.scenarios import RunState, StepState

#: How a finished child run counts for the step that waited for it; anything else fails the step.
CHILD_OUTCOMES = {RunState.SUCCEEDED: StepState.SUCCEEDED, RunState.WARNING: StepState.WARNING}


class RunScenario(StepKind[RunScenarioStep]):
    definition = RunScenarioStep

    def run(self, context: RunContext, position: int, step: RunScenarioStep) -> StepOutcome:
        host = context.host
        child = host.runs.request_child_run(context.run, step.scenario, host.worker, step.wait)
        said = f"run #{child.run_id} of {step.scenario}"
        outputs = {"run": child.run_id}
        if child.state == RunState.SKIPPED:
            return StepOutcome(StepState.WARNING, f"{said}: {child.state}", outputs)
        if not step.wait:
            return StepOutcome(StepState.SUCCEEDED, f"{said}: {child.state}", outputs)
        if not host.run_child(context, child.run_id):
            return StepOutcome(StepState.FAILED, f"{said} could not start", outputs)
        state = host.runs.run_state(child.run_id)
        outcome = CHILD_OUTCOMES.get(state, StepState.FAILED)
        if state == RunState.ABORTED and context.aborted.is_set():
            outcome = StepState.ABORTED
        return StepOutcome(outcome, f"{said}: {state}", outputs)
