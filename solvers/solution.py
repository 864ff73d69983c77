"""What every solver in ``solvers`` returns: the solution with its per-step diagnostics, a status, and
work counters. ODE and SDE solvers share it, so regularizers and benchmarks read both the same way."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

__all__ = ["Status", "SolverStats", "Solution", "SolveError"]


class Status(enum.Enum):
    """How a solve ended."""

    SUCCESS = "success"
    MAX_STEPS = "max_steps"
    STEP_SIZE_UNDERFLOW = "step_size_underflow"
    NON_FINITE = "non_finite"


@dataclass
class SolverStats:
    """Work counters, updated where the work happens.

    Attributes:
        nfe: evaluations of ``f`` in the forward solve (initial-step selection included).
        n_steps: steps tried (``n_accepted + n_rejected``).
        nfe_adjoint: evaluations of ``f`` made by the continuous adjoint's backward solve (filled in when
            ``backward`` runs; 0 otherwise).
        njev, nlu: Jacobians computed and matrices factorised (implicit methods; the calls of ``f`` inside a
            Jacobian are counted here, not in ``nfe``).
        n_newton, n_newton_fail: Newton iterations and non-converged Newton solves (0 for the linearly
            implicit Rosenbrock methods).
        njvp: Jacobian–vector products of matrix-free Newton–Krylov (``jac="krylov"``), which forms no
            Jacobian (``njev`` 0); its work is ``nfe + njvp``.
    """

    nfe: int = 0
    n_steps: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    nfe_adjoint: int = 0
    njev: int = 0
    nlu: int = 0
    n_newton: int = 0
    n_newton_fail: int = 0
    njvp: int = 0


@dataclass(frozen=True)
class Solution:
    """The result of :func:`solve`.

    Attributes:
        ts: save times ``(m,)`` (float64, whatever the state's dtype).
        ys: states at ``ts``, ``(m, *y0.shape)``.
        status, message: how the solve ended; ``message`` suggests a fix when it did not succeed.
        stats: :class:`SolverStats`.
        step_ts: start time of each accepted step ``(N,)`` (step j spans ``[step_ts[j], step_ts[j] +
            step_sizes[j]]``).
        step_sizes: ``h_j`` of each accepted step (signed), ``(N,)`` (float64, like ``step_ts``).
        error_estimates: ``E_j = RMS(ẽ_j / (atol + rtol·max(|y0|, |y1|)))`` of each accepted step, ``(N,)``.
        stiffness_estimates: ``S_j = |ρ_j h_j| / stability_size`` of each accepted step, ``(N,)`` (empty if
            the method has no stiffness stages or the estimate was switched off).
        differentiable_estimates: True when the estimates carry autograd history (``adjoint="backprop"``).
        switches: ``method="auto"`` only: ``(t, method)`` for the start and every switch between methods.
    """

    ts: torch.Tensor
    ys: torch.Tensor
    status: Status
    message: str
    stats: SolverStats
    step_ts: torch.Tensor
    step_sizes: torch.Tensor
    error_estimates: torch.Tensor
    stiffness_estimates: torch.Tensor
    differentiable_estimates: bool
    switches: tuple[tuple[float, str], ...] = ()

    @property
    def success(self) -> bool:
        return self.status is Status.SUCCESS


class SolveError(RuntimeError):
    """A solve that did not reach its end time; ``.solution`` holds the partial :class:`Solution`."""

    def __init__(self, message: str, solution: Solution):
        super().__init__(message)
        self.solution = solution
