"""Explicit Runge–Kutta ODE solvers whose per-step error and stiffness estimates are differentiable.

``solve(problem, method, ...) -> Solution`` is the entry point; ``odeint`` keeps torchdiffeq's signature.
"""

from sciml.solvers.controllers import ConstantSteps, Controller, IController, PIDController
from sciml.solvers.ode.adjoint import adjoint_parameters
from sciml.solvers.ode.odeint import odeint, odeint_adjoint, odeint_event
from sciml.solvers.ode.reference import reference_solution
from sciml.solvers.ode.rk import RungeKutta, StepResult, error_ratio, initial_step_size
from sciml.solvers.ode.solve import get_method, solve
from sciml.solvers.ode.tableau import TABLEAUS, Tableau
from sciml.solvers.solution import Solution, SolveError, SolverStats, Status

__all__ = [
    "solve", "odeint", "odeint_adjoint", "odeint_event", "reference_solution", "adjoint_parameters",
    "Solution", "SolveError", "SolverStats", "Status", "get_method",
    "Controller", "IController", "PIDController", "ConstantSteps",
    "RungeKutta", "StepResult", "error_ratio", "initial_step_size", "Tableau", "TABLEAUS",
]  # fmt: skip
