"""Conjugate gradients, plain and preconditioned, on numpy vectors or torch fields of any shape.

Hestenes & Stiefel, *Methods of conjugate gradients for solving linear systems* (1952); the
preconditioned form as in Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., Alg. 9.1. The
stagnation test follows MATLAB's ``pcg``: the update ``α p`` is below round-off relative to ``x`` at
three consecutive checks (made every 4th iteration, to keep the reductions per iteration at three).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sciml.solvers.linear.operators import as_operator, as_vector, backend_of
from sciml.solvers.linear.result import LinearSolveResult, SolveStatus

__all__ = ["cg", "check_tolerances"]

_STAGNATION_STEPS = 3  # consecutive checks with ‖α p‖ < eps ‖x‖ ...
_STAGNATION_EVERY = 4  # ... made every 4th iteration (two reductions saved on the others)
_DIVERGED = 1e12  # residual growth over the initial one reported as divergence (as SOR)
_GROWN = 10.0  # a residual ending this far above its start gets the hint below
_GROWTH_HINT = (
    "CG needs a symmetric positive definite A; for a nonsymmetric A use gmres, and for a singular A make b "
    "consistent (e.g. subtract its mean for a pure-Neumann problem)"
)


def check_tolerances(rtol: float, atol: float, maxiter: int | None, n: int) -> int:
    """Validate ``rtol``/``atol``/``maxiter`` and return ``maxiter`` (default ``10 n``).

    Raises:
        ValueError: negative or non-finite tolerances, both zero, or a ``maxiter`` that is negative, not an
            integer, or a bool.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value}")
    if rtol == 0 and atol == 0:
        raise ValueError("`rtol` and `atol` are both 0, so the solve could never stop; set one > 0")
    if maxiter is None:
        return 10 * n
    if isinstance(maxiter, bool) or int(maxiter) != maxiter or maxiter < 0:
        raise ValueError(f"`maxiter` must be a non-negative integer, got {maxiter}")
    return int(maxiter)


def krylov_start(A: Any, b: Any, x0: Any, rtol: float, atol: float, maxiter: int | None) -> tuple:
    """The common start of the Krylov solvers: validated ``b`` and tolerances, the operator, ``x0`` and its
    residual.

    Returns:
        ``(b, xp, n, maxiter, matvec, x, r, tol)``: ``b`` as a vector, its backend, its size, the iteration
        limit (default ``10 n``), ``A`` as a callable, the starting iterate (a copy, or zeros; zeros whenever
        ``b = 0``, whose solution is ``x = 0``, as in scipy), ``b − A x`` and the stopping threshold
        ``max(rtol·‖b‖, atol)``.

    Raises:
        ValueError: as :func:`check_tolerances`, or ``A``/``b``/``x0`` of the wrong kind or shape.
    """
    b = as_vector(b, "b")
    xp = backend_of(b)
    n = int(np.prod(b.shape))
    maxiter = check_tolerances(rtol, atol, maxiter, n)
    matvec = as_operator(A, b, "A")
    if x0 is not None:
        x0 = as_vector(x0, "x0", like=b)
    bnorm = xp.norm(b)
    if x0 is None or bnorm == 0:
        x = xp.zeros_like(b)
        r = xp.copy(b)
    else:
        x = xp.copy(x0)
        r = b - matvec(x)
    return b, xp, n, maxiter, matvec, x, r, max(rtol * bnorm, atol)


def initial_status(
    rnorm: float, tol: float, bnorm: float | None = None
) -> tuple[SolveStatus, int, str] | None:
    """``(status, 0, message)`` when the starting residual already ends the solve (``b = 0``, a residual that
    is not finite, or one within ``tol``); ``None`` otherwise."""
    if bnorm == 0:
        return SolveStatus.CONVERGED, 0, "b = 0, so x = 0 solves the system exactly (x0 is not used)"
    if not np.isfinite(rnorm):
        return SolveStatus.NON_FINITE, 0, "the initial residual b - A x0 is not finite"
    if rnorm <= tol:
        return SolveStatus.CONVERGED, 0, "the initial guess already meets the tolerance"
    return None


def precision_hint(eps: float, tol: float, bnorm: float, dtype: Any) -> str:
    """A sentence for a solve that cannot reach ``tol`` when ``tol`` is near round-off of a low-precision
    ``dtype`` (float32, float16), else ``""``."""
    if eps > 1e-15 and tol < 10 * eps * bnorm:
        return (
            f"; the tolerance is below what {dtype} resolves (relative ~{10 * eps:.1e}): pass `A` and `b` "
            "in float64 or loosen rtol/atol"
        )
    return ""


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

    Stops when ``‖r‖ <= max(rtol·‖b‖, atol)`` (scipy's convention). ``r`` is the recursively updated
    residual; when it meets the tolerance the true residual ``b − A x`` is computed (one more product with
    ``A``) and only that decides convergence: if it misses, CG restarts from it, and when a restart brought
    it down by less than half the solve ends as ``stagnation`` (the tolerance is below the attainable
    accuracy). ``b = 0`` returns ``x = 0`` at once (as scipy). Dot products run over all entries, so ``b``
    may be a torch field of any shape with ``A`` a callable such as ``PoissonGrid.apply``.

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
        :class:`LinearSolveResult`; ``status`` says why it stopped: ``converged`` (checked on the true
        residual, which is then the last entry of ``residual_history``), ``max_iterations``,
        ``negative_curvature`` (``A`` not positive definite), ``indefinite_preconditioner``,
        ``stagnation`` (tolerance below attainable accuracy) or ``non_finite`` (also when the residual grew
        by more than 1e12 over its start: CG diverged, ``A`` is not SPD or ``b`` is inconsistent). A
        ``max_iterations`` message says when the residual ended far above its start, and why.

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

    if (done := initial_status(rnorm, tol, bnorm)) is not None:
        return finish(*done)

    r0 = rnorm
    confirmed = math.inf  # the true residual at the last check (when the recursive one met the tolerance)
    restart = True  # (re)start the directions from r: at k = 0 and after a failed check of the true residual
    stagnant = 0
    for k in range(1, maxiter + 1):
        if restart:
            z = r if precond is None else precond(r)
            rz = xp.dot(r, z)
            if precond is not None and not (rz > 0 and np.isfinite(rz)):
                return finish(*_bad_preconditioner(rz, k - 1))
            p = xp.copy(z)
            z_old = xp.copy(z) if flexible and precond is not None else None
            restart = False
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
            # the recursive residual drifts from b − A x in finite precision: the true one decides
            r = b - matvec(x)
            rnorm = xp.norm(r)
            history[-1] = rnorm
            if rnorm <= tol:
                return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations")
            if not rnorm < 0.5 * confirmed:
                return finish(
                    SolveStatus.STAGNATION,
                    k,
                    f"stagnated at iteration {k}: the updated residual met the tolerance but the true one "
                    f"‖b − A x‖/‖b‖ = {rnorm / bnorm:.3e} does not and restarting no longer reduces it"
                    + (precision_hint(eps, tol, bnorm, b.dtype) or "; loosen rtol/atol"),
                )
            confirmed, restart = rnorm, True
            continue
        if rnorm > _DIVERGED * r0:
            return finish(
                SolveStatus.NON_FINITE,
                k,
                f"CG diverged at iteration {k} (‖r‖ grew by {rnorm / r0:.1e}): {_GROWTH_HINT}",
            )
        if k % _STAGNATION_EVERY == 0 and abs(alpha) * xp.norm(p) < eps * xp.norm(x):
            stagnant += 1
            if stagnant >= _STAGNATION_STEPS:
                return finish(
                    SolveStatus.STAGNATION,
                    k,
                    f"stagnated at iteration {k} with ‖r‖/‖b‖ = {rnorm / bnorm:.3e}: the iterate no longer "
                    "changes in this precision"
                    + (
                        precision_hint(eps, tol, bnorm, b.dtype)
                        or "; loosen rtol/atol or use a better preconditioner"
                    ),
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
    grown = rnorm > _GROWN * r0
    return finish(
        SolveStatus.MAX_ITERATIONS,
        maxiter,
        f"not converged after {maxiter} iterations (‖r‖/‖b‖ = {rnorm / bnorm:.3e}"
        + (
            f", {rnorm / r0:.1e} times the initial residual): {_GROWTH_HINT}"
            if grown
            else "); raise maxiter or use a preconditioner"
        ),
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
