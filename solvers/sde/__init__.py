"""Adaptive SDE solvers whose per-step error and stiffness estimates are differentiable.

``solve(problem, method, ...) -> Solution`` is the entry point (the same
:class:`~sciml.solvers.solution.Solution`
as the ODE core); ``sdeint`` keeps torchsde's signature. Noise comes from torchsde's ``BrownianInterval``.
"""

from sciml.solvers.controllers import ConstantSteps, Controller, IController, PIDController
from sciml.solvers.sde.dropin import TORCHSDE_METHODS, sdeint, sdeint_adjoint
from sciml.solvers.sde.methods import (
    METHODS,
    SDEMethod,
    SDESolverStats,
    SDEStepResult,
    default_method,
    get_method,
)
from sciml.solvers.sde.solve import (
    DEFAULT_CONTROLLER,
    StepEstimate,
    brownian_interval,
    initial_step_size,
    noise_size,
    single_step,
    solve,
)
from sciml.solvers.sde.tableau import SRA_TABLEAUS, SRI_TABLEAUS, SRATableau, SRITableau
from sciml.solvers.solution import Solution, SolveError, Status

__all__ = [
    "solve", "sdeint", "sdeint_adjoint", "TORCHSDE_METHODS",
    "single_step", "StepEstimate", "brownian_interval", "noise_size", "initial_step_size",
    "DEFAULT_CONTROLLER",
    "METHODS", "SDEMethod", "SDEStepResult", "SDESolverStats", "default_method", "get_method",
    "SRATableau", "SRITableau", "SRA_TABLEAUS", "SRI_TABLEAUS",
    "Solution", "SolveError", "Status", "Controller", "IController", "PIDController", "ConstantSteps",
]  # fmt: skip
