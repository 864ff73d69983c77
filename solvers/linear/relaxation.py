"""Successive over-relaxation: SOR and symmetric SOR iterations, a red–black SOR for grid fields, a
batched SOR for many shifted systems, and Young's optimal relaxation factor.

SOR (Young 1950; Frankel 1950) for ``A = S + D + U`` (strictly lower, diagonal, strictly upper) is

    x ← x + (D/ω + S)⁻¹ (b − A x),

SSOR the same with the symmetric preconditioner ``(D/ω + S) (ω/(2−ω)) D⁻¹ (D/ω + Sᵀ)`` (Sheldon 1955).
For consistently ordered matrices (5-point stencils in natural or red–black order) the optimal factor is
Young's ``ω* = 2 / (1 + √(1 − β²)) = 1 + (β / (1 + √(1 − β²)))²`` with ``β = ρ(I − D⁻¹A)``
(Young, *Iterative Solution of Large Linear Systems*, 1971, ch. 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.solvers.linear.krylov import check_tolerances, precision_hint
from sciml.solvers.linear.operators import NUMPY, TORCH, as_vector
from sciml.solvers.linear.preconditioners import (
    SSORPreconditioner,
    _asymmetry,
    _check_omega,
    _positive_diagonal,
    _square_sparse,
)
from sciml.solvers.linear.result import LinearSolveResult, SolveStatus
from sciml.solvers.linear.triangular import UnitLowerTriangular, row_levels
from scipy.linalg import blas

__all__ = [
    "sor",
    "ssor",
    "red_black_sor",
    "sor_batch",
    "SORBatchResult",
    "jacobi_spectral_radius",
    "JacobiSpectrumEstimate",
    "estimate_jacobi_spectrum",
    "young_omega",
]

_DIVERGED = 1e12  # residual growth (relative to the initial one) reported as divergence
_DENSE_MAX = 256  # up to this size SOR uses dense BLAS triangular solves
_STALL_WINDOW = 100  # iterations without a new low (by 1 %) of a residual at round-off level: stagnation
_ROUND_OFF = 10.0  # ... "at round-off level": ‖r‖ <= this · eps · (‖b‖ + ‖A‖∞ ‖x‖)


class _Lows:
    """The residual's lows (each 1 % below the last), for two cheap diagnoses of a stationary iteration:
    :meth:`stagnant` (no new low for ``_STALL_WINDOW`` iterations while the residual sits at the round-off
    level of its own evaluation: the precision cannot give more) and :meth:`stall_note` (no new low over the
    second half of a run that hit ``maxiter``)."""

    def __init__(self, r0: float, eps: float, bnorm: float, anorm: Callable[[], float]) -> None:
        self.low, self.k_low, self.eps, self.bnorm, self._anorm = r0, 0, eps, bnorm, anorm

    def stagnant(self, k: int, rnorm: float, x: Any, norm: Callable[[Any], float]) -> bool:
        if rnorm < 0.99 * self.low:
            self.low, self.k_low = rnorm, k
            return False
        wait = k - self.k_low
        if wait < _STALL_WINDOW or wait % _STALL_WINDOW:  # (‖x‖ and ‖A‖ only now and then)
            return False
        if callable(self._anorm):
            self._anorm = self._anorm()
        return self.low <= _ROUND_OFF * self.eps * (self.bnorm + self._anorm * norm(x))

    def stagnation_message(self, method: str, k: int, rnorm: float, tol: float, dtype: str) -> str:
        return (
            f"{method} stagnated at iteration {k} with ‖r‖/‖b‖ = {rnorm / self.bnorm:.3e} (target "
            f"{tol / self.bnorm:.3e}): the residual has not fallen for {k - self.k_low} iterations and is at "
            f"the round-off level of {dtype}"
            + (precision_hint(self.eps, tol, self.bnorm, dtype) or "; loosen rtol/atol")
        )

    def stall_note(self, maxiter: int) -> str:
        if maxiter < 2 * _STALL_WINDOW or self.k_low > maxiter // 2:
            return "raise maxiter or try another omega"
        return (
            f"the residual has not fallen since iteration {self.k_low}: if A is singular (e.g. pure "
            "Neumann), b must be consistent with it (e.g. subtract its mean); else try another omega"
        )


def _stationary(
    matvec: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    x0: Any,
    step: Callable[[np.ndarray], np.ndarray],
    rtol: float,
    atol: float,
    maxiter: int,
    callback: Callable[[np.ndarray], None] | None,
    method: str,
    dtype: Any = np.float64,
    anorm: Callable[[], float] = lambda: 0.0,
) -> LinearSolveResult:
    """``x ← x + step(r)`` until ``‖b − A x‖ <= max(rtol‖b‖, atol)``; the true residual is tracked.

    The iteration runs in float64 (``b`` is float64); ``x`` is returned in ``dtype`` (that of the caller's
    ``b``). When that is a lower precision the residual of the rounded ``x`` replaces the last history
    entry and decides convergence, so ``converged`` holds for the vector returned. A residual stuck at
    float64 round-off (``anorm()``: ``‖A‖∞``) ends as ``stagnation``.
    """
    if x0 is not None:
        x0 = as_vector(x0, "x0", like=b)
    bnorm = NUMPY.norm(b)
    x = np.zeros_like(b) if x0 is None or bnorm == 0 else np.array(x0, dtype=np.float64)
    r = b - matvec(x) if x0 is not None and bnorm > 0 else b.copy()
    rnorm = NUMPY.norm(r)
    tol = max(rtol * bnorm, atol)
    history = [rnorm]
    r0 = max(rnorm, 1e-300)

    def finish(status, k, message):
        out = x
        if np.dtype(dtype) != x.dtype:  # judge the vector returned, not the float64 iterate
            out = x.astype(dtype)
            history[-1] = NUMPY.norm(b - matvec(out.astype(np.float64)))
            if status == SolveStatus.CONVERGED and history[-1] > tol:
                status = SolveStatus.STAGNATION
                message = (
                    f"{method} met the tolerance in float64, but x rounded to {dtype} (the dtype of `b`) has "
                    f"‖b − A x‖ = {history[-1]:.3e} > {tol:.3e}: pass `b` in float64 or loosen rtol/atol"
                )
        return LinearSolveResult(
            out, k, np.asarray(history), status == SolveStatus.CONVERGED, status, message
        )

    if bnorm == 0:
        return finish(SolveStatus.CONVERGED, 0, "b = 0, so x = 0 solves the system exactly (x0 is not used)")
    if rnorm <= tol:
        return finish(SolveStatus.CONVERGED, 0, "the initial guess already meets the tolerance")
    lows = _Lows(rnorm, NUMPY.eps(b), bnorm, anorm)
    for k in range(1, maxiter + 1):
        x += step(r)
        r = b - matvec(x)
        rnorm = NUMPY.norm(r)
        history.append(rnorm)
        if callback is not None:
            callback(x)
        if rnorm <= tol:
            return finish(SolveStatus.CONVERGED, k, f"{method} converged in {k} iterations")
        if not np.isfinite(rnorm) or rnorm > _DIVERGED * r0:
            return finish(
                SolveStatus.NON_FINITE,
                k,
                f"{method} diverged at iteration {k} (‖r‖ grew by {rnorm / r0:.1e}): the matrix is not "
                "symmetric positive definite or the iteration does not converge for it",
            )
        if lows.stagnant(k, rnorm, x, NUMPY.norm):
            return finish(
                SolveStatus.STAGNATION, k, lows.stagnation_message(method, k, rnorm, tol, "float64")
            )
    return finish(
        SolveStatus.MAX_ITERATIONS,
        maxiter,
        f"{method} did not converge in {maxiter} iterations (‖r‖ = {rnorm:.3e}, target {tol:.3e}); "
        + lows.stall_note(maxiter),
    )


def _norm_inf(A: sp.csr_array) -> float:
    """``‖A‖∞``, the largest absolute row sum."""
    return float(np.abs(A).sum(axis=1).max(initial=0.0))


def _prepare(A: Any, b: Any) -> tuple[sp.csr_array, np.ndarray, np.ndarray, np.dtype]:
    """``(A, b, diag(A), dtype)``: canonical float64 CSR, ``b`` in float64, the positive diagonal, and the
    dtype the solution is returned in (that of ``b``; float64 for integer ``b``)."""
    A = _square_sparse(A)
    b = as_vector(b, "b")
    if torch.is_tensor(b):
        raise TypeError("`b` must be a numpy array for matrix SOR; use red_black_sor for torch fields")
    dtype = b.dtype
    b = np.asarray(b, dtype=np.float64)
    if b.ndim != 1 or b.shape[0] != A.shape[0]:
        raise ValueError(f"`A` has shape {A.shape} but `b` has shape {b.shape}; `b` must be 1-D of length n")
    return A, b, _positive_diagonal(A), dtype


def sor(
    A: Any,
    b: Any,
    omega: float = 1.0,
    x0: Any = None,
    *,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int = 10_000,
    callback: Callable[[np.ndarray], None] | None = None,
) -> LinearSolveResult:
    """Solve ``A x = b`` by SOR in natural (row) order: ``x ← x + (D/ω + S)⁻¹ (b − A x)``.

    Each iteration costs one triangular solve and one product with ``A``; the stopping test uses the true
    residual, ``‖b − A x‖ <= max(rtol·‖b‖, atol)``. ``omega = 1`` is Gauss–Seidel. The iteration runs in
    float64; ``x`` is returned in the dtype of ``b``, and for a float32 ``b`` convergence is judged on the
    rounded ``x`` (a tolerance below float32's resolution then ends as ``stagnation``). ``b = 0`` returns
    ``x = 0`` at once.

    Args:
        A: square sparse (or dense) matrix with a positive diagonal (SOR converges for every ω ∈ (0, 2)
            when ``A`` is symmetric positive definite).
        b: right-hand side (1-D numpy array).
        omega: relaxation factor in (0, 2).
        x0: initial guess (default zero).
        rtol, atol, maxiter: stopping rule and iteration cap.
        callback: called as ``callback(x)`` after every iteration.

    Returns:
        :class:`~sciml.solvers.linear.LinearSolveResult` (status ``non_finite`` when the iteration diverges,
        ``stagnation`` when the residual stops falling at float64 round-off).

    Raises:
        TypeError: complex ``A`` or ``b`` (the imaginary part is never dropped), a torch ``b``.
        ValueError: ``omega`` outside (0, 2), a non-positive diagonal entry, non-finite ``A``/``b``/``x0``,
            mismatched shapes, bad tolerances.
    """
    omega = _check_omega(omega)
    A, b, d, dtype = _prepare(A, b)
    maxiter = check_tolerances(rtol, atol, maxiter, b.size)
    if A.shape[0] <= _DENSE_MAX:  # small systems: dense BLAS kernels have far less call overhead
        dense = A.toarray()
        lower = np.asfortranarray(np.tril(dense, k=-1) + np.diag(d / omega))

        def step(r):
            return blas.dtrsv(lower, r, lower=1)

        def matvec(v):
            return dense @ v
    else:  # D/ω + S = (I + S ω D⁻¹)(D/ω): a unit lower solve, then a division by D/ω
        factor = UnitLowerTriangular(sp.tril(A, k=-1))
        factor.set_column_scaling(omega / d)
        scale = omega / d

        def step(r):
            return scale * factor.solve(r)

        def matvec(v):
            return A @ v

    return _stationary(
        matvec, b, x0, step, rtol, atol, maxiter, callback, f"SOR(ω={omega:g})", dtype, lambda: _norm_inf(A)
    )


def ssor(
    A: Any,
    b: Any,
    omega: float = 1.0,
    x0: Any = None,
    *,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int = 10_000,
    callback: Callable[[np.ndarray], None] | None = None,
) -> LinearSolveResult:
    """Solve symmetric ``A x = b`` by symmetric SOR (a forward then a backward SOR sweep per iteration).

    Same arguments, result and errors as :func:`sor`; ``A`` must also be symmetric. As a preconditioner
    for CG use :func:`~sciml.solvers.linear.ssor_preconditioner`.
    """
    omega = _check_omega(omega)
    A, b, _, dtype = _prepare(A, b)
    maxiter = check_tolerances(rtol, atol, maxiter, b.size)
    M = SSORPreconditioner(A, omega)
    return _stationary(
        lambda v: A @ v,
        b,
        x0,
        M.matvec,
        rtol,
        atol,
        maxiter,
        callback,
        f"SSOR(ω={omega:g})",
        dtype,
        lambda: _norm_inf(A),
    )


# ------------------------------------------------------------------------------------------ red–black
def red_black_sor(
    grid: Any,
    b: np.ndarray | torch.Tensor,
    omega: float = 1.0,
    x0: np.ndarray | torch.Tensor | None = None,
    *,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int = 10_000,
) -> LinearSolveResult:
    """SOR on a :class:`~sciml.problems.linear.PoissonGrid` field in red–black order, fully vectorised.

    Cells are coloured by the parity of their index sum; a 5-point (7-point) stencil couples only cells
    of different colours, so each half-sweep updates all cells of one colour at once:
    ``u_c ← u_c + ω (b − A u)_c / D_c``. Red–black ordering is consistently ordered, so Young's ω* from
    :func:`young_omega` applies. The residual of each iterate is computed by the next half-sweep, so an
    iteration costs two operator applications.

    Args:
        grid: the :class:`~sciml.problems.linear.PoissonGrid` (its ``apply`` and ``diagonal``).
        b: right-hand-side field of shape ``grid.shape`` (numpy or torch; zero outside the fluid).
        omega, x0, rtol, atol, maxiter: as in :func:`sor`; ``x0`` is a field.

    Returns:
        :class:`~sciml.solvers.linear.LinearSolveResult` whose ``x`` is a field of the type of ``b``. The
        iteration runs in the dtype of ``b``: a residual that stops falling at that precision's round-off
        (a tolerance it cannot reach, e.g. rtol 1e-8 in float32) ends as ``stagnation``, with the reason.

    Raises:
        ValueError: ``omega`` outside (0, 2), a field of the wrong shape, non-finite input.
    """
    omega = _check_omega(omega)
    as_numpy = not torch.is_tensor(b)
    b_t = torch.as_tensor(as_vector(b, "b"))
    if not b_t.is_floating_point():
        b_t = b_t.double()
    if tuple(b_t.shape) != tuple(grid.shape):
        raise ValueError(f"`b` must be a field of the grid shape {grid.shape}, got {tuple(b_t.shape)}")
    maxiter = check_tolerances(rtol, atol, maxiter, b_t.numel())
    fluid = torch.as_tensor(grid.fluid, device=b_t.device)
    b_t = b_t * fluid
    diag = torch.as_tensor(np.where(grid.fluid, grid.diagonal(), 1.0), dtype=b_t.dtype, device=b_t.device)
    parity = torch.as_tensor(np.indices(grid.shape).sum(axis=0) % 2, device=b_t.device)
    colours = [(fluid & (parity == c)).to(b_t.dtype) * (omega / diag) for c in (0, 1)]
    if x0 is None:
        x = torch.zeros_like(b_t)
    else:
        x = torch.as_tensor(as_vector(x0, "x0", like=b if not as_numpy else np.asarray(b)))
        x = x.to(dtype=b_t.dtype, device=b_t.device) * fluid
    tol = max(rtol * float(torch.linalg.vector_norm(b_t)), atol)

    def result(status, k, history, message):
        out = x.cpu().numpy() if as_numpy else x
        return LinearSolveResult(
            out, k, np.asarray(history), status == SolveStatus.CONVERGED, status, message
        )

    if not bool(b_t.any()):  # b = 0: x = 0 exactly
        x = torch.zeros_like(b_t)
        return result(SolveStatus.CONVERGED, 0, [0.0], "b = 0, so x = 0 solves the system exactly")
    r = b_t - grid.apply(x)
    history = [float(torch.linalg.vector_norm(r))]
    r0 = max(history[0], 1e-300)
    bnorm = float(torch.linalg.vector_norm(b_t))
    lows = _Lows(history[0], float(torch.finfo(b_t.dtype).eps), bnorm, lambda: 2.0 * float(diag.max()))
    for k in range(maxiter + 1):
        rnorm = history[-1]
        if rnorm <= tol:
            return result(SolveStatus.CONVERGED, k, history, f"red-black SOR converged in {k} iterations")
        if not np.isfinite(rnorm) or rnorm > _DIVERGED * r0:
            return result(SolveStatus.NON_FINITE, k, history, f"red-black SOR diverged at iteration {k}")
        if k and lows.stagnant(k, rnorm, x, TORCH.norm):
            dtype = str(b_t.dtype).removeprefix("torch.")
            return result(
                SolveStatus.STAGNATION,
                k,
                history,
                lows.stagnation_message("red-black SOR", k, rnorm, tol, dtype),
            )
        if k == maxiter:
            break
        x += colours[0] * r
        r = b_t - grid.apply(x)
        x += colours[1] * r
        r = b_t - grid.apply(x)
        history.append(float(torch.linalg.vector_norm(r)))
    return result(
        SolveStatus.MAX_ITERATIONS,
        maxiter,
        history,
        f"red-black SOR did not converge in {maxiter} iterations (‖r‖ = {history[-1]:.3e}, target "
        f"{tol:.3e}); " + lows.stall_note(maxiter),
    )


# ------------------------------------------------------------------------------------------ batched
class SORBatchResult(NamedTuple):
    """Outcome of :func:`sor_batch`: per system the iteration count, solution and convergence flag."""

    iterations: np.ndarray
    x: np.ndarray
    converged: np.ndarray


def sor_batch(
    A: Any,
    B: np.ndarray,
    omega: np.ndarray | float,
    shift: np.ndarray | float = 0.0,
    *,
    rtol: float = 1e-8,
    maxiter: int = 10_000,
    chunk: int = 4096,
) -> SORBatchResult:
    """Natural-order SOR on many systems ``(A + shift_k I) x_k = b_k`` with factors ``omega_k`` at once.

    The systems share ``A``'s sparsity; the triangular sweep runs wavefront by wavefront
    (:func:`~sciml.solvers.linear.row_levels`), each wavefront vectorised over the batch, so it reproduces
    :func:`sor` with ``x0 = 0`` (same updates, same stopping rule ``‖r_k‖ <= rtol ‖b_k‖``) for thousands
    of systems in one pass — what tabulating the cost of every relaxation factor on every instance of a
    sequence needs.

    Args:
        A: square sparse matrix (positive diagonal after shifting).
        B: right-hand sides, shape ``(n, K)``.
        omega: relaxation factors, scalar or shape ``(K,)``, each in (0, 2).
        shift: diagonal shifts, scalar or shape ``(K,)``.
        rtol, maxiter: stopping rule and iteration cap.
        chunk: systems per vectorised block (memory ~ 4 · n · chunk floats).

    Returns:
        :class:`SORBatchResult` with ``iterations`` (``maxiter`` where not converged), ``x`` ``(n, K)`` and
        ``converged``.

    Raises:
        ValueError: shapes that do not match, ``omega`` outside (0, 2), a non-positive shifted diagonal,
            non-finite input.
    """
    A = _square_sparse(A)
    B = np.asarray(B, dtype=np.float64)
    n = A.shape[0]
    if B.ndim != 2 or B.shape[0] != n:
        raise ValueError(f"`B` must have shape (n, K) = ({n}, K), got {B.shape}")
    if not np.isfinite(B).all():
        raise ValueError("`B` has non-finite entries")
    K = B.shape[1]
    omega = np.broadcast_to(np.asarray(omega, dtype=np.float64), (K,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.float64), (K,))
    if not ((omega > 0) & (omega < 2)).all():
        raise ValueError("every `omega` must lie in (0, 2)")
    if not np.isfinite(shift).all():
        raise ValueError("`shift` has non-finite entries")
    maxiter = check_tolerances(rtol, 0.0, maxiter, n)
    if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"`chunk` must be a positive integer (systems solved together), got {chunk!r}")
    chunk = int(chunk)
    diag = A.diagonal()[:, None] + shift[None, :]
    if not (diag > 0).all():
        raise ValueError("the shifted diagonal `diag(A) + shift` must be positive for every system")
    S = sp.csr_array(sp.tril(A, k=-1, format="csr"))
    level = row_levels(S)
    levels = [np.flatnonzero(level == v) for v in range(int(level.max()) + 1)]
    blocks = [sp.csr_array(S[rows]) for rows in levels]
    iterations = np.full(K, maxiter, dtype=np.int64)
    X = np.zeros((n, K))
    converged = np.zeros(K, dtype=bool)
    for start in range(0, K, chunk):
        cols = np.arange(start, min(start + chunk, K))  # global index of each working column
        b = np.ascontiguousarray(B[:, cols])
        x = np.zeros_like(b)
        r = b.copy()
        scale = np.ascontiguousarray(omega[cols][None, :] / diag[:, cols])
        shift_c = np.ascontiguousarray(shift[cols][None, :])
        tol = rtol * np.sqrt(np.einsum("ij,ij->j", b, b))
        done = np.sqrt(np.einsum("ij,ij->j", r, r)) <= tol
        iterations[cols[done]] = 0
        converged[cols[done]] = True
        for k in range(1, maxiter + 1):
            if done.mean() > 0.25:  # compact the working set (finished columns idle until then)
                keep = ~done
                x, r, b, scale, shift_c = (
                    np.ascontiguousarray(a[:, keep]) for a in (x, r, b, scale, shift_c)
                )
                tol, cols, done = tol[keep], cols[keep], done[keep]
            if cols.size == 0:
                break
            y = np.empty_like(r)
            for rows, block in zip(levels, blocks):
                y[rows] = (r[rows] - block @ y) * scale[rows]
            x += y
            r = b - A @ x
            r -= shift_c * x
            new = (np.sqrt(np.einsum("ij,ij->j", r, r)) <= tol) & ~done
            if new.any():
                iterations[cols[new]] = k
                converged[cols[new]] = True
                X[:, cols[new]] = x[:, new]
                done |= new
        X[:, cols[~done]] = x[:, ~done]
    return SORBatchResult(iterations, X, converged)


# ------------------------------------------------------------------------------------------ Young
def jacobi_spectral_radius(A: Any) -> float:
    """``ρ(I − D⁻¹A)``, the largest eigenvalue modulus of the Jacobi iteration matrix, for a matrix with
    positive diagonal (dense eigenvalues up to n = 2000, Lanczos beyond for a symmetric ``A``). A symmetric
    ``A`` uses the symmetric eigensolver; a nonsymmetric one the general dense one (its eigenvalues may be
    complex).

    Raises:
        TypeError: complex ``A``.
        ValueError: a non-positive diagonal entry, a non-square or non-finite matrix, or a nonsymmetric
            ``A`` of more than 2000 rows (no reliable sparse estimate).
    """
    A = _square_sparse(A)
    d = _positive_diagonal(A)
    s = 1.0 / np.sqrt(d)
    J = sp.eye(A.shape[0]) - sp.diags_array(s) @ A @ sp.diags_array(s)  # similar to I − D⁻¹A
    symmetric = not _asymmetry(A)
    if A.shape[0] <= 2000:
        dense = J.toarray()
        return float(np.abs(np.linalg.eigvalsh(dense) if symmetric else np.linalg.eigvals(dense)).max())
    if not symmetric:  # ARPACK's largest-modulus eigenvalue of a non-normal J with ± pairs is unreliable
        raise ValueError(
            f"jacobi_spectral_radius: `A` is nonsymmetric and has {A.shape[0]} > 2000 rows, where no "
            "reliable estimate of ρ(I − D⁻¹A) is available here (ARPACK returns run-to-run different values "
            "for such non-normal matrices); pass young_omega(spectral_radius=...) a value you know, or "
            "tune ω across your systems with sciml.relax.PriorTuner"
        )
    vals = spla.eigsh(J, k=1, which="LM", tol=1e-10, return_eigenvectors=False)
    return float(abs(vals[0]))


def young_omega(A: Any = None, *, spectral_radius: float | None = None) -> float:
    """Young's optimal SOR factor ``ω* = 1 + (β / (1 + √(1 − β²)))²`` with ``β = ρ(I − D⁻¹A)``.

    Optimal for consistently ordered matrices whose Jacobi eigenvalues are real (e.g. symmetric 5-point
    stencils, and nonsymmetric ones such as central-difference convection–diffusion below cell Péclet 1); a
    good reference elsewhere. β of a nonsymmetric ``A`` is that of its general eigenvalues.

    Args:
        A: the matrix (β from :func:`jacobi_spectral_radius`), or
        spectral_radius: β itself.

    Raises:
        ValueError: neither or both given, or β ∉ [0, 1) (Jacobi must converge for the formula to hold).
    """
    if (A is None) == (spectral_radius is None):
        raise ValueError("give exactly one of `A` and `spectral_radius`")
    beta = jacobi_spectral_radius(A) if spectral_radius is None else float(spectral_radius)
    if not (0.0 <= beta < 1.0):
        raise ValueError(
            f"Young's formula needs a Jacobi spectral radius in [0, 1), got {beta:.6g}; the Jacobi "
            "iteration does not converge for this matrix"
        )
    return 1.0 + (beta / (1.0 + np.sqrt(1.0 - beta * beta))) ** 2


class JacobiSpectrumEstimate(NamedTuple):
    """Outcome of :func:`estimate_jacobi_spectrum`: extreme eigenvalues of ``B = D^{-1/2} A D^{-1/2}``.

    Attributes:
        low, high: Ritz estimates of ``λ_min(B)`` and ``λ_max(B)`` (``low`` >= the true value, ``high`` <=).
        spectral_radius: the implied Jacobi radius ``max(1 − low, high − 1) = ρ(I − D⁻¹A)`` estimate.
        residual_low, residual_high: Ritz residual norms; an eigenvalue of ``B`` lies within each.
        matvecs: products with ``A`` spent.
        vector_low, vector_high: the Ritz vectors (unit norm), to warm-start the next estimate.
    """

    low: float
    high: float
    spectral_radius: float
    residual_low: float
    residual_high: float
    matvecs: int
    vector_low: np.ndarray
    vector_high: np.ndarray


def estimate_jacobi_spectrum(
    A: Any,
    v0: np.ndarray | None = None,
    *,
    ends: str = "both",
    rtol: float = 0.02,
    max_steps: int = 80,
    seed: int = 0,
    symmetric: bool | None = None,
    deflate: np.ndarray | None = None,
) -> JacobiSpectrumEstimate:
    """Estimate the ends of the spectrum of ``B = D^{-1/2} A D^{-1/2}`` (hence the Jacobi spectral radius
    ``ρ(I − D⁻¹A) = max(1 − λ_min(B), λ_max(B) − 1)`` of a symmetric ``A``) by a few Lanczos steps.

    Lanczos with full reorthogonalisation (Golub & Van Loan, *Matrix Computations*, §10.1) on ``B``. It
    stops once the error bound ``res² / gap`` of each wanted extreme Ritz value (``res``: its Ritz
    residual, ``gap``: the distance to the next Ritz value; Parlett, *The Symmetric Eigenvalue Problem*,
    §11.7) is at most ``rtol`` times ``δ = 1 − ρ̂`` — the quantity Young's formula takes the square root
    of — or after ``max_steps`` products. The default start is ``D^{1/2} 1`` (close to the lowest mode of
    diffusion-type matrices) plus a small seeded random part; pass the previous estimate's ``vector_low``
    to warm-start across a sequence of related matrices. A nonsymmetric ``A`` is replaced by its symmetric
    part ``(A + Aᵀ)/2``.

    Args:
        A: square sparse (or dense) matrix with a positive diagonal.
        v0: starting vector of length ``n`` (default: see above).
        ends: ``"both"`` (converge ``λ_min`` and ``λ_max``) or ``"low"`` (only ``λ_min``; ``high`` is then
            a lower bound).
        rtol: relative accuracy of ``δ`` at which to stop (> 0).
        max_steps: at most this many Lanczos steps (products with ``A``), >= 2.
        seed: seeds the random part of the default start.
        symmetric: whether ``A`` is known to be symmetric (``None``: check; ``False``: use ``(A + Aᵀ)/2``).
        deflate: a unit vector of length ``n`` that is an eigenvector of ``B`` to leave out (the Lanczos
            basis is kept orthogonal to it): for a singular ``A`` whose rows sum to 0 (pure Neumann),
            ``D^{1/2} 1 / ‖D^{1/2} 1‖``, so that ``low`` estimates the smallest *nonzero* eigenvalue.

    Returns:
        :class:`JacobiSpectrumEstimate`.

    Raises:
        ValueError: a non-square or non-finite ``A``, a non-positive diagonal entry, ``v0`` of the wrong
            length or zero (after deflation), ``deflate`` of the wrong length or not of unit norm, unknown
            ``ends``, ``rtol <= 0``, ``max_steps < 2``.
    """
    A = _square_sparse(A)
    d = _positive_diagonal(A)
    if ends not in ("both", "low"):
        raise ValueError(f"`ends` must be 'both' or 'low', got {ends!r}")
    if not (np.isfinite(rtol) and rtol > 0):
        raise ValueError(f"`rtol` must be a positive number, got {rtol}")
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 2:
        raise ValueError(f"`max_steps` must be an integer >= 2, got {max_steps}")
    n = A.shape[0]
    s = 1.0 / np.sqrt(d)
    if symmetric is None:
        At = sp.csr_array(A.T)
        symmetric = (
            np.array_equal(At.indptr, A.indptr)
            and np.array_equal(At.indices, A.indices)
            and np.allclose(At.data, A.data, rtol=0, atol=1e-14 * np.abs(A.data).max())
        )
    if not symmetric:
        A = sp.csr_array((A + A.T) * 0.5)
    if v0 is None:
        rng = np.random.default_rng(seed)
        v = np.sqrt(d) / np.linalg.norm(np.sqrt(d)) + 1e-3 * rng.standard_normal(n) / np.sqrt(n)
    else:
        v = np.asarray(v0, dtype=np.float64).ravel()
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ValueError(f"`v0` must be a finite vector of length {n}, got shape {v.shape}")
    if deflate is not None:
        deflate = np.asarray(deflate, dtype=np.float64).ravel()
        if deflate.shape != (n,) or not abs(np.linalg.norm(deflate) - 1.0) < 1e-8:
            raise ValueError(f"`deflate` must be a unit vector of length {n}")
        v = v - deflate * (deflate @ v)
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError("`v0` must not be the zero vector (nor, with `deflate`, parallel to it)")
    steps = min(int(max_steps), max(n - (deflate is not None), 1))
    V = np.empty((min(steps + 1, 4), n))  # Lanczos basis, grown by doubling (warm starts need 1–2 rows)
    V[0] = v / norm
    alpha, beta = np.zeros(steps), np.zeros(steps)
    check = 1  # test convergence at m = 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, ... (eigh of T is not free)
    for k in range(steps):
        w = s * (A @ (s * V[k]))
        alpha[k] = V[k] @ w
        for _ in range(2):  # full reorthogonalisation (twice is enough)
            w -= V[: k + 1].T @ (V[: k + 1] @ w)
            if deflate is not None:
                w -= deflate * (deflate @ w)
        beta[k] = np.linalg.norm(w)
        m = k + 1
        last = m == steps or beta[k] <= 1e-14 * max(abs(alpha[k]), 1.0)
        if m >= check or last:
            check = max(m + 1, int(1.25 * m))
            T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
            theta, Y = np.linalg.eigh(T)
            res = beta[k] * np.abs(Y[-1, [0, -1]])  # Ritz residuals of the extreme pairs
            rho = max(1.0 - theta[0], theta[-1] - 1.0)
            delta = max(1.0 - rho, 1e-300) if ends == "both" else max(theta[0], 1e-300)
            if m == 1:
                bound = res.copy()
            else:
                bound = res**2 / np.maximum([theta[1] - theta[0], theta[-1] - theta[-2]], 1e-300)
                bound = np.minimum(bound, res)
            wanted = bound if ends == "both" else bound[:1]
            if last or ((m >= 2 or ends == "low") and wanted.max() <= rtol * delta):
                break
        if k + 1 == V.shape[0]:
            V = np.concatenate([V, np.empty((min(V.shape[0], steps + 1 - V.shape[0]), n))])
        V[k + 1] = w / beta[k]
    vectors = Y[:, [0, -1]].T @ V[:m]
    return JacobiSpectrumEstimate(
        float(theta[0]),
        float(theta[-1]),
        float(rho),
        float(res[0]),
        float(res[1]),
        m,
        vectors[0] / np.linalg.norm(vectors[0]),
        vectors[1] / np.linalg.norm(vectors[1]),
    )
