"""Conjugate gradients, plain and preconditioned, on numpy vectors or torch fields of any shape.

Hestenes & Stiefel, *Methods of conjugate gradients for solving linear systems* (1952); the
preconditioned form as in Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., Alg. 9.1. The
stagnation test follows MATLAB's ``pcg``: the update ``α p`` is below round-off relative to ``x`` at
three consecutive checks (made every 4th iteration, to keep the reductions per iteration at three).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sciml.solvers.linear.operators import as_operator, as_vector, backend_of
from sciml.solvers.linear.result import LinearSolveResult, SolveStatus

__all__ = ["cg", "check_tolerances"]

_STAGNATION_STEPS = 3  # consecutive checks with ‖α p‖ < eps ‖x‖ ...
_STAGNATION_EVERY = 4  # ... made every 4th iteration (two reductions saved on the others)


def check_tolerances(rtol: float, atol: float, maxiter: int | None, n: int) -> int:
    """Validate ``rtol``/``atol``/``maxiter`` and return ``maxiter`` (default ``10 n``).

    Raises:
        ValueError: negative or non-finite tolerances, both zero, or a negative ``maxiter``.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value}")
    if rtol == 0 and atol == 0:
        raise ValueError("`rtol` and `atol` are both 0, so the solve could never stop; set one > 0")
    if maxiter is None:
        return 10 * n
    if int(maxiter) != maxiter or maxiter < 0:
        raise ValueError(f"`maxiter` must be a non-negative integer, got {maxiter}")
    return int(maxiter)


def krylov_start(A: Any, b: Any, x0: Any, rtol: float, atol: float, maxiter: int | None) -> tuple:
    """The common start of the Krylov solvers: validated ``b`` and tolerances, the operator, ``x0`` and its
    residual.

    Returns:
        ``(b, xp, n, maxiter, matvec, x, r, tol)``: ``b`` as a vector, its backend, its size, the iteration
        limit (default ``10 n``), ``A`` as a callable, the starting iterate (a copy, or zeros), ``b − A x``
        and the stopping threshold ``max(rtol·‖b‖, atol)``.

    Raises:
        ValueError: as :func:`check_tolerances`, or ``A``/``b``/``x0`` of the wrong kind or shape.
    """
    b = as_vector(b, "b")
    xp = backend_of(b)
    n = int(np.prod(b.shape))
    maxiter = check_tolerances(rtol, atol, maxiter, n)
    matvec = as_operator(A, b, "A")
    if x0 is None:
        x = xp.zeros_like(b)
        r = xp.copy(b)
    else:
        x = xp.copy(as_vector(x0, "x0", like=b))
        r = b - matvec(x)
    return b, xp, n, maxiter, matvec, x, r, max(rtol * xp.norm(b), atol)


def initial_status(rnorm: float, tol: float) -> tuple[SolveStatus, int, str] | None:
    """``(status, 0, message)`` when the starting residual already ends the solve (not finite, or within
    ``tol``); ``None`` otherwise."""
    if not np.isfinite(rnorm):
        return SolveStatus.NON_FINITE, 0, "the initial residual b - A x0 is not finite"
    if rnorm <= tol:
        return SolveStatus.CONVERGED, 0, "the initial guess already meets the tolerance"
    return None


def cg(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], None] | None = None,
    flexible: bool = False,
) -> LinearSolveResult:
    """Solve ``A x = b`` for symmetric positive definite ``A`` by (preconditioned) conjugate gradients.

    Stops when ``‖r‖ <= max(rtol·‖b‖, atol)`` (scipy's convention) with ``r`` the recursively updated
    residual. Dot products run over all entries, so ``b`` may be a torch field of any shape with ``A`` a
    callable such as ``PoissonGrid.apply``.

    Args:
        A: scipy sparse matrix, dense array, ``LinearOperator`` or callable ``v -> A v`` (numpy ``b``);
            a callable on tensors or a 2-D tensor (torch ``b``).
        b: right-hand side, numpy array or torch tensor.
        x0: initial guess shaped like ``b`` (default zero).
        rtol, atol: relative and absolute tolerance on the residual norm.
        maxiter: iteration limit (default ``10 · b.size``).
        M: preconditioner approximating ``A⁻¹`` (symmetric positive definite): a callable, a matrix or a
            ``LinearOperator`` (e.g. from :func:`~sciml.solvers.linear.jacobi`,
            :func:`~sciml.solvers.linear.incomplete_cholesky`, :func:`~sciml.solvers.linear.amg`,
            :func:`~sciml.solvers.linear.ssor_preconditioner`).
        callback: called as ``callback(x)`` after every iteration.
        flexible: flexible PCG (Notay, *Flexible conjugate gradients*, SIAM J. Sci. Comput. 22, 2000):
            ``β = rₖ₊₁ᵀ(zₖ₊₁ − zₖ) / rₖᵀzₖ`` (Polak–Ribière), for a preconditioner that varies between
            iterations or is not exactly symmetric (a network, an inner iteration); one extra vector.

    Returns:
        :class:`LinearSolveResult`; ``status`` says why it stopped: ``converged``, ``max_iterations``,
        ``negative_curvature`` (``A`` not positive definite), ``indefinite_preconditioner``,
        ``stagnation`` (tolerance below attainable accuracy) or ``non_finite``.

    Raises:
        TypeError: unsupported kinds of ``A``/``M``, or numpy and torch mixed.
        ValueError: shape mismatch (naming the argument), non-finite ``b``/``x0``/matrix entries, bad
            tolerances.
    """
    b, xp, n, maxiter, matvec, x, r, tol = krylov_start(A, b, x0, rtol, atol, maxiter)
    precond = None if M is None else as_operator(M, b, "M")
    bnorm = xp.norm(b)
    rnorm = xp.norm(r)
    history = [rnorm]
    eps = xp.eps(b)

    def finish(status: SolveStatus, iterations: int, message: str) -> LinearSolveResult:
        return LinearSolveResult(
            x, iterations, np.asarray(history), status == SolveStatus.CONVERGED, status, message
        )

    if (done := initial_status(rnorm, tol)) is not None:
        return finish(*done)

    z = r if precond is None else precond(r)
    rz = xp.dot(r, z)
    if precond is not None and not (rz > 0 and np.isfinite(rz)):
        return finish(*_bad_preconditioner(rz, 0))
    p = xp.copy(z)
    z_old = xp.copy(z) if flexible and precond is not None else None
    stagnant = 0
    for k in range(1, maxiter + 1):
        Ap = matvec(p)
        pAp = xp.dot(p, Ap)
        if not np.isfinite(pAp):
            return finish(SolveStatus.NON_FINITE, k - 1, f"pᵀAp is not finite at iteration {k}: A overflowed")
        if pAp <= 0:
            return finish(
                SolveStatus.NEGATIVE_CURVATURE,
                k - 1,
                f"negative curvature pᵀAp = {pAp:.3e} at iteration {k}: A is not symmetric positive "
                "definite (for a singular Neumann problem fix the mean or pin a value; for indefinite "
                "systems use MINRES or GMRES)",
            )
        alpha = rz / pAp
        x += alpha * p
        r -= alpha * Ap
        rnorm = xp.norm(r)
        history.append(rnorm)
        if callback is not None:
            callback(x)
        if not np.isfinite(rnorm):
            return finish(SolveStatus.NON_FINITE, k, f"the residual is not finite at iteration {k}")
        if rnorm <= tol:
            return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations")
        if k % _STAGNATION_EVERY == 0 and abs(alpha) * xp.norm(p) < eps * xp.norm(x):
            stagnant += 1
            if stagnant >= _STAGNATION_STEPS:
                return finish(
                    SolveStatus.STAGNATION,
                    k,
                    f"stagnated at iteration {k} with ‖r‖/‖b‖ = {rnorm / bnorm:.3e}: the iterate no longer "
                    "changes in this precision; loosen rtol/atol or use a better preconditioner",
                )
        elif k % _STAGNATION_EVERY == 0:
            stagnant = 0
        z = r if precond is None else precond(r)
        rz_new = rnorm * rnorm if precond is None else xp.dot(r, z)
        if precond is not None and not (rz_new > 0 and np.isfinite(rz_new)):
            return finish(*_bad_preconditioner(rz_new, k))
        if flexible and precond is not None:
            beta = (rz_new - xp.dot(r, z_old)) / rz
            z_old = xp.copy(z)
        else:
            beta = rz_new / rz
        rz = rz_new
        p *= beta
        p += z
    return finish(
        SolveStatus.MAX_ITERATIONS,
        maxiter,
        f"not converged after {maxiter} iterations (‖r‖/‖b‖ = {rnorm / max(bnorm, 1e-300):.3e}); raise "
        "maxiter or use a preconditioner",
    )


def _bad_preconditioner(rz: float, k: int) -> tuple[SolveStatus, int, str]:
    if not np.isfinite(rz):
        return (
            SolveStatus.NON_FINITE,
            k,
            f"rᵀMr is not finite at iteration {k}: the preconditioner overflowed",
        )
    return (
        SolveStatus.INDEFINITE_PRECONDITIONER,
        k,
        f"rᵀMr = {rz:.3e} <= 0 at iteration {k}: the preconditioner M is not positive definite",
    )
