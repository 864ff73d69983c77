"""Explicit Runge–Kutta ODE solvers whose per-step error and stiffness estimates are differentiable.

``solve(problem, method, ...) -> Solution`` is the entry point; ``odeint`` keeps torchdiffeq's signature.
"""

from solvers.controllers import ConstantSteps, Controller, IController, PIDController
from solvers.ode.adjoint import adjoint_parameters
from solvers.ode.odeint import odeint, odeint_adjoint
from solvers.ode.reference import reference_solution
from solvers.ode.rk import RungeKutta, StepResult, error_ratio, initial_step_size
from solvers.ode.solve import get_method, solve
from solvers.ode.tableau import TABLEAUS, Tableau
from solvers.solution import Solution, SolveError, SolverStats, Status

__all__ = [
    "solve", "odeint", "odeint_adjoint", "reference_solution", "adjoint_parameters",
    "Solution", "SolveError", "SolverStats", "Status", "get_method",
    "Controller", "IController", "PIDController", "ConstantSteps",
    "RungeKutta", "StepResult", "error_ratio", "initial_step_size", "Tableau", "TABLEAUS",
]  # fmt: skip
