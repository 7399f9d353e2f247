"""The kinds of scenario steps, one module each, found by their definition class.

Adding a step type means a definition class in ``wire.definitions`` and a ``StepKind`` here;
the engine never tests a step's type.
"""

from typing import Any

from himalia.scenarios.steps.base import StepKind
from himalia.scenarios.steps.compute_metrics import ComputeMetrics
from himalia.scenarios.steps.notebook import Notebook
from himalia.scenarios.steps.run_checks import RunChecks
from himalia.scenarios.steps.run_scenario import RunScenario
from himalia.scenarios.steps.set_variables import SetVariables
from himalia.scenarios.steps.sql import Sql
from himalia.wire.definitions import StepBase

STEP_KINDS: dict[type[StepBase], StepKind[Any]] = {
    kind.definition: kind for kind in (Notebook(), ComputeMetrics(), RunChecks(), SetVariables(), Sql(), RunScenario())
}


def step_kind(step: StepBase) -> StepKind[Any]:
    """The kind that carries ``step`` out."""
    return STEP_KINDS[type(step)]
