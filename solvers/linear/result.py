"""The one result type of every linear solver in sciml (classical and learned)."""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SolveStatus", "LinearSolveResult"]


class SolveStatus(str, Enum):
    """Why an iterative solve stopped. A ``str`` enum: ``result.status == "converged"`` works."""

    CONVERGED = "converged"
    MAX_ITERATIONS = "max_iterations"
    NEGATIVE_CURVATURE = "negative_curvature"  # pᵀAp <= 0: the operator is not positive definite
    INDEFINITE_PRECONDITIONER = "indefinite_preconditioner"  # rᵀMr <= 0: M is not positive definite
    STAGNATION = "stagnation"  # the iterate stopped changing before the tolerance was reached
    NON_FINITE = "non_finite"  # a NaN or inf appeared (operator or preconditioner overflow)

    def __str__(self) -> str:  # print as the plain value
        return self.value


class LinearSolveResult(NamedTuple):
    """Outcome of an iterative linear solve.

    Attributes:
        x: the final iterate (same type, shape, dtype and device as the right-hand side).
        iterations: iterations performed (operator applications after the initial residual).
        residual_history: 2-norms of the residual, entry 0 for the initial guess, one per iteration
            (the recursively updated residual for CG, the true residual for SOR/SSOR).
        converged: whether the stopping test ``‖r‖ <= max(rtol·‖b‖, atol)`` was met.
        status: a :class:`SolveStatus`.
        message: a sentence for users: what happened and, on failure, what to try.
    """

    x: Any
    iterations: int
    residual_history: np.ndarray
    converged: bool
    status: SolveStatus
    message: str
