"""``run_checks``: run a dataset's checks (all, or those named); an error fails the step, a warning warns."""

from himalia.data.rules import Outcome
from himalia.scenarios.steps.base import RunContext, StepFailed, StepKind, StepOutcome
from himalia.wire.definitions import RunChecksStep
from himalia.wire.scenarios import StepState


class RunChecks(StepKind[RunChecksStep]):
    definition = RunChecksStep

    def run(self, context: RunContext, position: int, step: RunChecksStep) -> StepOutcome:
        checked = context.host.services.checks.run_checks(
            context.actor, context.project_key, step.dataset, origin="scenario", run_id=str(context.run_id)
        )
        results = [r for r in checked.results if step.checks is None or r.check in step.checks]
        missing = sorted(set(step.checks or []) - {r.check for r in results})
        if missing:
            raise StepFailed(f"{step.dataset} has no check named {', '.join(missing)}")
        outputs = {
            "dataset": step.dataset,
            "results": [{"check": r.check, "outcome": r.outcome, "message": r.message} for r in results],
        }
        errors = [f"{r.check}: {r.message}" for r in results if r.outcome == Outcome.ERROR]
        warnings = [f"{r.check}: {r.message}" for r in results if r.outcome == Outcome.WARNING]
        if errors:
            return StepOutcome(StepState.FAILED, "; ".join(errors), outputs)
        if warnings:
            return StepOutcome(StepState.WARNING, "; ".join(warnings), outputs)
        return StepOutcome(StepState.SUCCEEDED, f"{len(results)} checks of {step.dataset} OK", outputs)
