"""Neural ODEs (and, beside them, SDEs) trained to be cheap to solve.

``NeuralODE`` solves a learned field with our adaptive solvers; the regularizers in
:mod:`sciml.neural_de.regularizers` read its solver's per-step error and stiffness estimates (globally) or
take one differentiable step at a sampled time (locally); :mod:`sciml.neural_de.training` trains the tasks
of :mod:`sciml.neural_de.tasks` with checkpoints, metrics and plots.
"""

from sciml.neural_de.model import BACKENDS, Autonomous, NeuralODE, NeuralODEResult
from sciml.neural_de.regularizers import (
    RNODE,
    ConstantSchedule,
    DelayedSchedule,
    ErrorEstimateRegularizer,
    ExponentialSchedule,
    LocalErrorRegularizer,
    Regularizer,
    Steer,
    StiffnessRegularizer,
    TayNODE,
)

__all__ = [
    "NeuralODE", "NeuralODEResult", "Autonomous", "BACKENDS", "Regularizer", "ErrorEstimateRegularizer",
    "StiffnessRegularizer", "LocalErrorRegularizer", "Steer", "RNODE", "TayNODE", "ConstantSchedule",
    "ExponentialSchedule", "DelayedSchedule",
]  # fmt: skip
