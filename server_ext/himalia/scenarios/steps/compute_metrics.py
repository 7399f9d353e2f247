"""``compute_metrics``: compute a dataset's probes and record their values for the run."""

from himalia.scenarios.steps.base import RunContext, StepKind, StepOutcome
from himalia.wire.definitions import ComputeMetricsStep
from himalia.wire.scenarios import StepState


class ComputeMetrics(StepKind[ComputeMetricsStep]):
    definition = ComputeMetricsStep

    def run(self, context: RunContext, position: int, step: ComputeMetricsStep) -> StepOutcome:
        computed = context.host.services.metrics.compute(
            context.actor, context.project_key, step.dataset, step.probes, origin="scenario", run_id=str(context.run_id)
        )
        values = dict(computed.values)
        return StepOutcome(StepState.SUCCEEDED, f"{len(values)} metrics of {step.dataset}", {"values": values})
