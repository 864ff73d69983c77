"""Physics-informed models on the shared PDE suite: PINN and Physics-Informed Gaussians, one trainer.

>>> import sciml.problems.pde as pde
>>> from sciml.pinn import PIG, TrainConfig, train
>>> problem = pde.get("helmholtz")
>>> model = PIG(2, 1, 400, lower=problem.domain.lower, upper=problem.domain.upper)
>>> result = train(problem, model, TrainConfig(adam_iterations=0, lbfgs_iterations=500))  # doctest: +SKIP
"""

from sciml.pinn.derivatives import JetDerivatives, derivatives
from sciml.pinn.models import PIG, PINN, Constrained, count_parameters
from sciml.pinn.trainer import (
    CheckpointMismatch,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainResult,
    resolve_device,
    train,
)

__all__ = [
    "PINN",
    "PIG",
    "Constrained",
    "count_parameters",
    "derivatives",
    "JetDerivatives",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainingDiverged",
    "CheckpointMismatch",
    "resolve_device",
    "train",
]
