"""Restarted GMRES(m) with right preconditioning, on numpy vectors or torch fields of any shape.

Saad & Schultz, *GMRES: a generalized minimal residual algorithm for solving nonsymmetric linear systems*,
SIAM J. Sci. Stat. Comput. 7 (1986); the right-preconditioned, restarted form as in Saad, *Iterative
Methods for Sparse Linear Systems*, 2nd ed., Alg. 6.9 and 9.5. The Arnoldi basis is orthogonalised by
classical Gram–Schmidt applied twice (CGS2: as accurate as modified Gram–Schmidt, in two matrix–vector
products with the basis instead of ``j`` dot products); the Hessenberg least-squares problem is solved by
Givens rotations, which give the residual norm at every iteration without forming the iterate.

With right preconditioning ``A M u = b``, ``x = M u``, the residual GMRES minimises is the true residual
``b − A x`` (not a preconditioned one), so the stopping test ``‖b − A x‖ <= max(rtol·‖b‖, atol)`` is the
same as :func:`~sciml.solvers.linear.cg`'s and scipy's, whatever ``M`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sciml.solvers.linear.krylov import initial_status, krylov_start, precision_hint
from sciml.solvers.linear.operators import as_operator
from sciml.solvers.linear.result import LinearSolveResult, SolveStatus

__all__ = ["gmres"]


def _givens(a: float, b: float) -> tuple[float, float]:
    """``(c, s)`` with ``[c s; −s c] [a; b] = [r; 0]``."""
    if b == 0.0:
        return 1.0, 0.0
    r = float(np.hypot(a, b))
    return a / r, b / r


def gmres(
    A: Any,
    b: Any,
    x0: Any = None,
    *,
    rtol: float = 1e-6,
    atol: float = 0.0,
    restart: int = 30,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[Any], None] | None = None,
    true_residual: bool = True,
) -> LinearSolveResult:
    """Solve ``A x = b`` for a general (nonsymmetric) ``A`` by restarted, right-preconditioned GMRES(m).

    Stops when ``‖b − A x‖ <= max(rtol·‖b‖, atol)`` (scipy's convention; the residual of the original
    system, also with a preconditioner). Each cycle builds an orthonormal basis of at most ``restart``
    Krylov vectors, takes the iterate minimising the residual over it, then recomputes the true residual
    and restarts from there. Convergence is always decided on that true residual (also when the cycle's
    Givens estimate met the tolerance: in finite precision the two can differ by far more than the
    tolerance); when it misses, GMRES goes on with another cycle. ``b = 0`` returns ``x = 0`` at once (as
    scipy). A Krylov space that becomes invariant (a "lucky breakdown": the exact solution
    lies in it, e.g. ``A`` with ``k < restart`` distinct eigenvalues) ends the cycle early with that
    solution. Dot products run over all entries, so ``b`` may be a torch field of any shape with ``A`` a
    callable on such fields.

    Args:
        A: scipy sparse matrix, dense array, ``LinearOperator`` or callable ``v -> A v`` (numpy ``b``);
            a callable on tensors or a 2-D tensor (torch ``b``).
        b: right-hand side, numpy array or torch tensor.
        x0: initial guess shaped like ``b`` (default zero).
        rtol, atol: relative and absolute tolerance on the residual norm.
        restart: ``m``, the Krylov vectors kept per cycle (memory ``(2m + 1)·n``: the basis ``v_j`` and its
            preconditioned images ``M v_j``, which give the iterate without applying ``M`` again).
        maxiter: limit on iterations, i.e. Arnoldi steps, each one application of ``A`` and of ``M``
            (default ``10 · b.size``). scipy's ``maxiter`` counts restart cycles instead.
        M: right preconditioner approximating ``A⁻¹`` (any nonsingular operator, of the same kinds as ``A``).
        callback: called as ``callback(x)`` with the iterate at the end of every cycle.
        true_residual: decide convergence on ``‖b − A x‖`` (one more product with ``A`` at the end). ``False``
            trusts the cycle's residual estimate when it meets the tolerance (no extra product) — for callers
            that check the result themselves, such as a Newton iteration whose own test rejects a poor step.

    Returns:
        :class:`LinearSolveResult`; ``iterations`` counts Arnoldi steps (each cycle costs one more
        application of ``A`` for the true residual), ``residual_history`` holds the initial residual norm
        and, per iteration, the norm GMRES minimises (the Givens estimate, equal to ``‖b − A x‖`` up to
        round-off); at the end of each cycle the true residual replaces it, so the last entry is
        ``‖b − A x‖`` of the returned ``x``. ``status``: ``converged``, ``max_iterations``, ``stagnation``
        (a whole cycle did not reduce the true residual: increase ``restart`` or precondition; or the
        tolerance is below the attainable accuracy; or ``A M`` is singular on the Krylov space) or
        ``non_finite``.

    Raises:
        TypeError: unsupported kinds of ``A``/``M``, or numpy and torch mixed.
        ValueError: shape mismatch (naming the argument), non-finite ``b``/``x0``/matrix entries, bad
            tolerances, ``restart < 1``.
    """
    if isinstance(restart, bool) or int(restart) != restart or restart < 1:
        raise ValueError(f"`restart` must be a positive integer (Krylov vectors per cycle), got {restart!r}")
    b, xp, n, maxiter, matvec, x, r, tol = krylov_start(A, b, x0, rtol, atol, maxiter)
    m = int(min(restart, n))
    precond = (lambda v: v) if M is None else as_operator(M, b, "M")
    is_torch = torch.is_tensor(b)
    bnorm = xp.norm(b)
    rnorm = xp.norm(r)
    history = [rnorm]

    def finish(status: SolveStatus, iterations: int, message: str) -> LinearSolveResult:
        return LinearSolveResult(
            x, iterations, np.asarray(history), status == SolveStatus.CONVERGED, status, message
        )

    if (done := initial_status(rnorm, tol, bnorm)) is not None:
        return finish(*done)

    shape = b.shape
    if is_torch:
        V = torch.empty((m + 1, n), dtype=b.dtype, device=b.device)
        Z = torch.empty((m, n), dtype=b.dtype, device=b.device)
    else:
        V = np.empty((m + 1, n), dtype=b.dtype)
        Z = np.empty((m, n), dtype=b.dtype)
    k = 0  # iterations so far
    while k < maxiter:
        # one cycle: Arnoldi on A M from r, Givens rotations on the Hessenberg matrix H ((m + 1) × m)
        H = np.zeros((m + 1, m))
        cs, sn = np.zeros(m), np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = rnorm
        V[0] = r.reshape(-1) / rnorm
        j = 0
        breakdown = False
        while j < m and k < maxiter:
            Z[j] = precond(V[j].reshape(shape)).reshape(-1)
            w = matvec(Z[j].reshape(shape)).reshape(-1)
            if not np.isfinite(xp.norm(w)):
                message = f"A M v is not finite at iteration {k + 1}: A or M overflowed"
                return finish(SolveStatus.NON_FINITE, k + 1, message)
            for _ in range(2):  # CGS2
                h = V[: j + 1] @ w
                w = w - h @ V[: j + 1]
                H[: j + 1, j] += h.cpu().numpy() if is_torch else h
            H[j + 1, j] = xp.norm(w)
            k += 1
            for i in range(j):  # previous rotations on the new column
                H[i, j], H[i + 1, j] = (
                    cs[i] * H[i, j] + sn[i] * H[i + 1, j],
                    -sn[i] * H[i, j] + cs[i] * H[i + 1, j],
                )
            # an invariant Krylov space: H[j+1, j] at round-off relative to the column
            breakdown = H[j + 1, j] <= 10 * xp.eps(b) * max(float(np.abs(H[: j + 1, j]).max()), 1e-300)
            if not breakdown:
                V[j + 1] = w / H[j + 1, j]
            cs[j], sn[j] = _givens(H[j, j], H[j + 1, j])
            H[j, j] = cs[j] * H[j, j] + sn[j] * H[j + 1, j]
            H[j + 1, j] = 0.0
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            history.append(abs(g[j + 1]))
            j += 1
            if abs(g[j]) <= tol or breakdown:
                break
        # the iterate: x += M V_j y = Z_j y with H[:j, :j] y = g[:j] (upper triangular after the rotations)
        diag = np.abs(np.diag(H[:j, :j]))
        if diag.min() <= 10 * xp.eps(b) * max(diag.max(), 1e-300):
            return finish(
                SolveStatus.STAGNATION,
                k,
                f"breakdown at iteration {k}: A M is singular on the Krylov space (‖r‖/‖b‖ = "
                f"{rnorm / max(bnorm, 1e-300):.3e}); check that A is nonsingular, or change the "
                "preconditioner",
            )
        y = np.linalg.solve(np.triu(H[:j, :j]), g[:j]) if j > 1 else g[:1] / H[0, 0]
        yt = torch.as_tensor(y, dtype=b.dtype, device=b.device) if is_torch else y.astype(b.dtype)
        x = x + (yt @ Z[:j]).reshape(shape)
        if not true_residual and abs(g[j]) <= tol:  # the caller checks the result itself (Newton)
            if callback is not None:
                callback(x)
            return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations (residual estimate)")
        r = b - matvec(x)  # also when the estimate met the tolerance: the true residual decides
        previous, rnorm = rnorm, xp.norm(r)
        history[-1] = rnorm
        if callback is not None:
            callback(x)
        if not np.isfinite(rnorm):
            return finish(SolveStatus.NON_FINITE, k, f"the residual is not finite at iteration {k}")
        if rnorm <= tol:
            return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations")
        estimate_met = abs(g[j]) <= tol  # the cycle ended on its estimate, the true residual disagrees
        if k < maxiter and (
            rnorm >= previous * (1 - 10 * xp.eps(b)) or (estimate_met and rnorm > 0.5 * previous)
        ):
            hint = precision_hint(xp.eps(b), tol, bnorm, b.dtype)
            return finish(
                SolveStatus.STAGNATION,
                k,
                f"GMRES({m}) stagnated at iteration {k}: a whole cycle left ‖b − A x‖/‖b‖ = "
                f"{rnorm / bnorm:.3e}"
                + (
                    hint
                    or (
                        " (its residual estimate met the tolerance, the true residual does not: the "
                        "tolerance is below the attainable accuracy; loosen rtol/atol)"
                        if estimate_met
                        else "; increase `restart`, use a preconditioner, or loosen rtol/atol if this is "
                        "round-off"
                    )
                ),
            )
    return finish(
        SolveStatus.MAX_ITERATIONS,
        maxiter,
        f"not converged after {maxiter} iterations (‖r‖/‖b‖ = {rnorm / max(bnorm, 1e-300):.3e}); raise "
        "maxiter or `restart`, or use a preconditioner",
    )
